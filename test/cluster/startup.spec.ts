/**
 * Nodes starting while another holds the migration lock (or while their own migrations run) answer
 * their orchestrator's probes: /health 200 (HEAD too), /ready 503 "migrating". Without a listener
 * until the broker started, a long wait for the lock read as a dead process to the kubelet, which
 * killed the node, perhaps mid-DDL.
 */
import { randomBytes } from "node:crypto";
import mysql from "mysql2/promise";
import { MIGRATION_LOCK_SQL } from "../../lib/db/migrator";
import { tempDir } from "../support/harness";
import { freePort, spawnGateway, type GatewayProcess } from "../support/processes";
import { createDatabase, dropDatabase, NATS_URL, REDIS_URL } from "./support/cluster";

async function probe(url: string, method = "GET"): Promise<{ status: number; body: string } | null> {
	try {
		const res = await fetch(url, { method });
		return { status: res.status, body: await res.text() };
	} catch {
		return null;
	}
}

describe("nodes starting while the migration lock is held", () => {
	const name = `tgw_startup_${randomBytes(3).toString("hex")}`;
	const started: GatewayProcess[] = [];

	afterAll(async () => {
		for (const node of started) node.kill("SIGKILL");
		await Promise.all(started.map((node) => node.exited));
		await dropDatabase(name);
	});

	it("answer /health and say /ready 503 migrating; once the lock is free, they migrate and become ready", async () => {
		const databaseUrl = await createDatabase(name);
		const holder = await mysql.createConnection(databaseUrl);
		const [rows] = await holder.query(`SELECT GET_LOCK(${MIGRATION_LOCK_SQL}, 1) AS locked`);
		expect((rows as Array<{ locked: number }>)[0]!.locked).toBe(1);
		const env = {
			NAMESPACE: name,
			TRANSPORTER: NATS_URL,
			DATABASE_URL: databaseUrl,
			REDIS_URL,
			JWT_SECRET: randomBytes(32).toString("hex"),
			TOKEN_ENCRYPTION_KEYS: `ci1:${randomBytes(32).toString("base64")}`,
			ADMIN_PASSWORD: "cluster-admin-password",
			HOST: "127.0.0.1",
		};
		const nodes = [];
		for (const [role, services] of [["api", "api,auth"], ["worker", "auth,broker"]] as const) {
			const port = await freePort();
			const node = spawnGateway(`${role}-${name}`, { ...env, NODE_ID: role, SERVICES: services, PORT: String(port), GRPC_PORT: String(await freePort()), DATA_DIR: tempDir() });
			started.push(node);
			nodes.push({ node, base: `http://127.0.0.1:${port}` });
		}
		for (const { base } of nodes) {
			let health = null;
			for (let i = 0; i < 100 && health?.status !== 200; i++) {
				await new Promise((r) => setTimeout(r, 100));
				health = await probe(`${base}/health`);
			}
			expect(health?.status).toBe(200);
			expect((await probe(`${base}/health`, "HEAD"))?.status).toBe(200);
			const ready = await probe(`${base}/ready`);
			expect(ready?.status).toBe(503);
			expect(JSON.parse(ready!.body)).toMatchObject({ status: "unavailable", reason: "migrating" });
			// A request that comes early (a Telegram push) is told to try again, not that nothing is there.
			const early = await probe(`${base}/api/v1/telegram/webhook/${"a".repeat(64)}`, "POST");
			expect(early?.status).toBe(503);
			expect(JSON.parse(early!.body)).toMatchObject({ error: { code: "UNAVAILABLE" } });
		}
		await holder.query(`SELECT RELEASE_LOCK(${MIGRATION_LOCK_SQL})`);
		await holder.end();
		for (const { node, base } of nodes) {
			await node.waitForOutput(/Gateway node \S+ ready/, 60_000);
			let ready = null;
			for (let i = 0; i < 50 && ready?.status !== 200; i++) {
				ready = await probe(`${base}/ready`);
				if (ready?.status !== 200) await new Promise((r) => setTimeout(r, 100));
			}
			expect(ready?.status).toBe(200);
		}
	}, 120_000);
});

describe("nodes whose transporter does not answer", () => {
	const name = `tgw_joining_${randomBytes(3).toString("hex")}`;
	const started: GatewayProcess[] = [];

	afterAll(async () => {
		for (const node of started) node.kill("SIGKILL");
		await Promise.all(started.map((node) => node.exited));
		await dropDatabase(name);
	});

	it("answer /health and say /ready 503 joining with the transporter down, api nodes too (nothing listened on theirs)", async () => {
		const env = {
			NAMESPACE: name,
			// Nothing listens there: broker.start() waits for NATS for as long as it is away.
			TRANSPORTER: `nats://127.0.0.1:${await freePort()}`,
			DATABASE_URL: await createDatabase(name),
			REDIS_URL,
			JWT_SECRET: randomBytes(32).toString("hex"),
			TOKEN_ENCRYPTION_KEYS: `ci1:${randomBytes(32).toString("base64")}`,
			ADMIN_PASSWORD: "cluster-admin-password",
			HOST: "127.0.0.1",
		};
		for (const [role, services] of [["api", "api,auth"], ["worker", "auth,broker"]] as const) {
			const port = await freePort();
			const node = spawnGateway(`${role}-${name}`, { ...env, NODE_ID: role, SERVICES: services, PORT: String(port), GRPC_PORT: String(await freePort()), DATA_DIR: tempDir() });
			started.push(node);
			const base = `http://127.0.0.1:${port}`;
			let ready = null;
			for (let i = 0; i < 300 && !ready?.body.includes("joining"); i++) {
				await new Promise((r) => setTimeout(r, 100));
				ready = await probe(`${base}/ready`);
			}
			expect({ role, status: ready?.status, body: JSON.parse(ready?.body ?? "null") }).toEqual({ role, status: 503, body: { status: "unavailable", reason: "joining", checks: { transporter: "down" } } });
			expect({ role, health: (await probe(`${base}/health`))?.status }).toEqual({ role, health: 200 });
		}
	}, 120_000);
});
