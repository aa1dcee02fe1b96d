/**
 * Real multi-process clusters for the cluster suite: each node is `bin/gateway.ts` in its own
 * process on NATS + MariaDB/MySQL + Redis, in a fresh database and a namespace of its own.
 */
import { randomBytes } from "node:crypto";
import { rmSync } from "node:fs";
import { ServiceBroker } from "moleculer";
import mysql from "mysql2/promise";
import { openDatabase, type Database } from "../../../lib/db/connection";
import { migrateUp } from "../../../lib/db/migrator";
import { freePort, spawnGateway, type GatewayProcess } from "../../support/processes";
import { tempDir } from "../../support/harness";

export const NATS_URL = process.env.CLUSTER_NATS_URL ?? "nats://127.0.0.1:4222";
export const REDIS_URL = process.env.CLUSTER_REDIS_URL ?? "redis://127.0.0.1:6379";
/** Server URL without a database: each cluster gets a database of its own. */
export const MYSQL_URL = process.env.CLUSTER_MYSQL_URL ?? "mysql://root@127.0.0.1:3306";

export interface NodeSpec {
	name: string;
	services: string[];
	env?: Record<string, string>;
}

export interface ClusterNode extends GatewayProcess {
	spec: NodeSpec;
	port: number;
	grpcPort: number;
	baseUrl: string;
}

export interface Cluster {
	namespace: string;
	databaseUrl: string;
	env: Record<string, string>;
	nodes: Map<string, ClusterNode>;
	node(name: string): ClusterNode;
	start(spec: NodeSpec): Promise<ClusterNode>;
	/** A Moleculer node in the test process that joins the cluster to call its actions. */
	client(): Promise<ServiceBroker>;
	stop(): Promise<void>;
}

/**
 * Waits until an api node routes `path` to a running service (its routes follow the cluster's
 * services, rebuilt shortly after a node joins): anything but 404 or 503 means it does.
 */
export async function waitForRoute(baseUrl: string, path: string, timeoutMs = 15_000): Promise<void> {
	const deadline = Date.now() + timeoutMs;
	for (;;) {
		const res = await fetch(`${baseUrl}${path}`);
		await res.arrayBuffer();
		if (res.status !== 404 && res.status !== 503) return;
		if (Date.now() > deadline) throw new Error(`${baseUrl}${path} is still ${res.status} after ${timeoutMs} ms`);
		await new Promise((r) => setTimeout(r, 100));
	}
}

export async function createDatabase(name: string): Promise<string> {
	const connection = await mysql.createConnection(`${MYSQL_URL}/`);
	try {
		await connection.query(`CREATE DATABASE \`${name}\` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci`);
	} finally {
		await connection.end();
	}
	return `${MYSQL_URL}/${name}`;
}

export async function dropDatabase(name: string): Promise<void> {
	const connection = await mysql.createConnection(`${MYSQL_URL}/`);
	try {
		await connection.query(`DROP DATABASE IF EXISTS \`${name}\``);
	} finally {
		await connection.end();
	}
}

/**
 * A fresh, migrated MariaDB database for the describe block it is called in, dropped after it:
 * read `scratch.db` and `scratch.name` inside the tests.
 */
export function migratedScratchDatabase(prefix: string): { readonly db: Database; readonly name: string } {
	const name = `${prefix}_${randomBytes(3).toString("hex")}`;
	let db: Database | undefined;
	beforeAll(async () => {
		db = await openDatabase(await createDatabase(name));
		await migrateUp(db);
	});
	afterAll(async () => {
		await db?.close();
		await dropDatabase(name);
	});
	return {
		name,
		get db() {
			if (!db) throw new Error("the scratch database is opened in beforeAll");
			return db;
		},
	};
}

export async function startCluster(specs: NodeSpec[], extraEnv: Record<string, string> = {}): Promise<Cluster> {
	const namespace = `ci${Date.now().toString(36)}${randomBytes(2).toString("hex")}`;
	const databaseName = `tgw_${namespace}`;
	const databaseUrl = await createDatabase(databaseName);
	const env: Record<string, string> = {
		NAMESPACE: namespace,
		TRANSPORTER: NATS_URL,
		DATABASE_URL: databaseUrl,
		REDIS_URL: REDIS_URL,
		JWT_SECRET: randomBytes(32).toString("hex"),
		TOKEN_ENCRYPTION_KEYS: `ci1:${randomBytes(32).toString("base64")}`,
		ADMIN_USERNAME: "admin",
		ADMIN_PASSWORD: "cluster-admin-password",
		HOST: "127.0.0.1",
		WEBHOOK_ALLOW_PRIVATE: "true",
		...extraEnv,
	};
	const nodes = new Map<string, ClusterNode>();
	const clients: ServiceBroker[] = [];

	// One per node start (a restarted node gets a fresh one); all removed when the cluster stops.
	const dataDirs: string[] = [];
	const dataDir = (name: string) => {
		const dir = tempDir(`tgw-${name}-`);
		dataDirs.push(dir);
		return dir;
	};

	async function start(spec: NodeSpec): Promise<ClusterNode> {
		const previous = nodes.get(spec.name);
		const port = previous?.port ?? (await freePort());
		const grpcPort = previous?.grpcPort ?? (await freePort());
		const process = spawnGateway(spec.name, {
			...env,
			NODE_ID: spec.name,
			SERVICES: spec.services.join(","),
			PORT: String(port),
			GRPC_PORT: String(grpcPort),
			DATA_DIR: dataDir(spec.name),
			...spec.env,
		});
		const node: ClusterNode = { ...process, spec, port, grpcPort, baseUrl: `http://127.0.0.1:${port}` };
		nodes.set(spec.name, node);
		await node.waitForOutput(/Gateway node \S+ ready/, 60_000);
		return node;
	}

	// Sequentially: the first node migrates the fresh database while the others wait for its lock.
	for (const spec of specs) await start(spec);

	return {
		namespace,
		databaseUrl,
		env,
		nodes,
		node(name) {
			const node = nodes.get(name);
			if (!node) throw new Error(`no node ${name}`);
			return node;
		},
		start,
		async client() {
			const broker = new ServiceBroker({
				namespace,
				nodeID: `test-client-${randomBytes(3).toString("hex")}`,
				transporter: NATS_URL,
				logger: false,
				heartbeatInterval: 1,
				heartbeatTimeout: 5,
				requestTimeout: 5_000,
				retryPolicy: { enabled: true, retries: 5, delay: 200, maxDelay: 2_000, factor: 2 },
			});
			await broker.start();
			clients.push(broker);
			return broker;
		},
		async stop() {
			await Promise.allSettled(clients.map((c) => c.stop()));
			for (const node of nodes.values()) {
				if (node.child.exitCode === null && node.child.signalCode === null) node.kill("SIGTERM");
			}
			let timer: NodeJS.Timeout | undefined;
			await Promise.race([
				Promise.allSettled([...nodes.values()].map((n) => n.exited)),
				new Promise((r) => (timer = setTimeout(r, 15_000))),
			]);
			clearTimeout(timer); // or Jest waits for it after the last test
			for (const node of nodes.values()) node.kill("SIGKILL");
			for (const dir of dataDirs) rmSync(dir, { recursive: true, force: true });
			await dropDatabase(databaseName);
		},
	};
}
