/**
 * The fault suite's own stores: a MariaDB, a NATS and a Redis process on free loopback ports, which
 * it kills and starts again at will. The shared stores on 3306, 4222 and 6379 belong to every other
 * suite on the machine and are never touched.
 */
import { spawn, execFile, type ChildProcess } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import mysql from "mysql2/promise";
import { freePort } from "../../support/processes";

const run = promisify(execFile);
const READY_TIMEOUT_MS = 60_000;
const isRoot = process.getuid?.() === 0;

/** Every store process this suite started, killed if the test process exits without stopping them. */
const live = new Set<ChildProcess>();
process.once("exit", () => {
	for (const child of live) child.kill("SIGKILL");
});

/** The first of `candidates` that exists (absolute paths), else the last one (looked up on PATH). */
function binary(...candidates: string[]): string {
	return candidates.find((c) => c.startsWith("/") && existsSync(c)) ?? candidates[candidates.length - 1]!;
}

function portOpen(port: number): Promise<boolean> {
	return new Promise((resolve) => {
		const socket = connect({ host: "127.0.0.1", port });
		socket.once("connect", () => (socket.destroy(), resolve(true)));
		socket.once("error", () => (socket.destroy(), resolve(false)));
	});
}

export class StoreProcess {
	private child: ChildProcess | undefined;
	private output = "";
	/** Date.now() of the last start that became ready. */
	startedAt = 0;

	constructor(
		readonly name: string,
		readonly port: number,
		readonly url: string,
		private readonly command: string,
		private readonly args: string[],
		/** Resolves once the store serves (after its port is open). */
		private readonly ready: () => Promise<void> = async () => undefined,
	) {}

	get running(): boolean {
		return this.child !== undefined && this.child.exitCode === null && this.child.signalCode === null;
	}

	/** Starts the process and waits until it serves; the output is in the error if it never does. */
	async start(): Promise<void> {
		if (this.running) throw new Error(`${this.name} is already running`);
		this.output = "";
		const child = spawn(this.command, this.args, { stdio: ["ignore", "pipe", "pipe"] });
		const keep = (chunk: Buffer) => (this.output = (this.output + chunk.toString()).slice(-8_000));
		child.stdout!.on("data", keep);
		child.stderr!.on("data", keep);
		child.once("exit", () => live.delete(child));
		child.once("error", (err) => keep(Buffer.from(String(err))));
		live.add(child);
		this.child = child;
		const deadline = Date.now() + READY_TIMEOUT_MS;
		while (!(await portOpen(this.port))) {
			if (!this.running) throw new Error(`${this.name} exited before it listened on ${this.port}:\n${this.output}`);
			if (Date.now() > deadline) throw new Error(`${this.name} did not listen on ${this.port} within ${READY_TIMEOUT_MS} ms:\n${this.output}`);
			await new Promise((r) => setTimeout(r, 50));
		}
		await this.ready();
		this.startedAt = Date.now();
	}

	/** SIGKILL: the store vanishes as in a crash (no goodbye to its clients, nothing flushed late). */
	async kill(): Promise<void> {
		const child = this.child;
		if (!child || !this.running) return;
		const exited = new Promise((resolve) => child.once("exit", resolve));
		child.kill("SIGKILL");
		await exited;
	}
}

export interface Stores {
	mariadb: StoreProcess;
	nats: StoreProcess;
	redis: StoreProcess;
	/** Kills every store and removes MariaDB's data directory. */
	stop(): Promise<void>;
}

async function mariadbReady(url: string): Promise<void> {
	const deadline = Date.now() + READY_TIMEOUT_MS;
	for (;;) {
		try {
			const connection = await mysql.createConnection(`${url}/`);
			await connection.query("SELECT 1");
			await connection.end();
			return;
		} catch (err) {
			if (Date.now() > deadline) throw err;
			await new Promise((r) => setTimeout(r, 100));
		}
	}
}

/** A MariaDB server of its own: a fresh data directory (root without a password) on a free port. */
async function privateMariadb(dir: string): Promise<StoreProcess> {
	const port = await freePort();
	const datadir = join(dir, "data");
	const user = isRoot ? ["--user=root"] : [];
	const installer = binary("/usr/bin/mariadb-install-db", "/usr/bin/mysql_install_db", "mariadb-install-db");
	await run(installer, ["--no-defaults", `--datadir=${datadir}`, "--auth-root-authentication-method=normal", "--skip-test-db", ...user], { timeout: 60_000 });
	const url = `mysql://root@127.0.0.1:${port}`;
	const args = [
		"--no-defaults",
		`--datadir=${datadir}`,
		`--port=${port}`,
		`--socket=${join(dir, "mariadb.sock")}`,
		`--pid-file=${join(dir, "mariadb.pid")}`,
		"--bind-address=127.0.0.1",
		"--skip-name-resolve",
		"--skip-log-bin",
		"--max-connections=400",
		"--innodb-buffer-pool-size=128M",
		...user,
	];
	return new StoreProcess("mariadb", port, url, binary("/usr/sbin/mariadbd", "/usr/sbin/mysqld", "mariadbd"), args, () => mariadbReady(url));
}

export async function startStores(): Promise<Stores> {
	const dir = mkdtempSync(join(tmpdir(), "tgw-faults-"));
	const natsPort = await freePort();
	const redisPort = await freePort();
	const mariadb = await privateMariadb(dir).catch((err: unknown) => {
		rmSync(dir, { recursive: true, force: true });
		throw err;
	});
	const stores = {
		mariadb,
		nats: new StoreProcess("nats", natsPort, `nats://127.0.0.1:${natsPort}`, binary("/usr/sbin/nats-server", "/usr/bin/nats-server", "nats-server"), [
			"-a",
			"127.0.0.1",
			"-p",
			String(natsPort),
		]),
		redis: new StoreProcess("redis", redisPort, `redis://127.0.0.1:${redisPort}`, binary("/usr/bin/redis-server", "redis-server"), [
			"--port",
			String(redisPort),
			"--bind",
			"127.0.0.1",
			"--save",
			"",
			"--appendonly",
			"no",
			"--daemonize",
			"no",
		]),
	};
	try {
		await Promise.all([stores.mariadb.start(), stores.nats.start(), stores.redis.start()]);
	} catch (err) {
		await Promise.allSettled([stores.mariadb.kill(), stores.nats.kill(), stores.redis.kill()]);
		rmSync(dir, { recursive: true, force: true });
		throw err;
	}
	return {
		...stores,
		async stop() {
			await Promise.allSettled([stores.mariadb.kill(), stores.nats.kill(), stores.redis.kill()]);
			rmSync(dir, { recursive: true, force: true });
		},
	};
}
