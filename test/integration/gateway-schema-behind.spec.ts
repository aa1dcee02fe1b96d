/**
 * MIGRATE_ON_START=false on a schema behind the build (the nodes of a rollout start beside the
 * migration job): the node stays alive and unready, says to run `npm run migrate -- up`, serves no
 * request, and starts once the migrations are applied.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { loadConfig } from "../../lib/config";
import { openDatabase } from "../../lib/db/connection";
import { migrateDown, migrateUp } from "../../lib/db/migrator";
import { freePort, spawnGateway, type GatewayProcess } from "../support/processes";

describe("gateway start with MIGRATE_ON_START=false on a schema behind the build", () => {
	let dataDir: string;
	let node: GatewayProcess | undefined;
	beforeAll(async () => {
		dataDir = mkdtempSync(join(tmpdir(), "tgw-schema-behind-"));
		const db = await openDatabase(loadConfig({ DATA_DIR: dataDir }).databaseUrl);
		await migrateUp(db);
		await migrateDown(db, { step: 2 });
		await db.close();
	});
	afterAll(async () => {
		node?.kill("SIGKILL");
		await node?.exited;
		rmSync(dataDir, { recursive: true, force: true });
	});

	it("waits unready, naming `npm run migrate -- up`, and starts once the schema is migrated", async () => {
		const port = await freePort();
		node = spawnGateway("behind", { DATA_DIR: dataDir, PORT: String(port), GRPC_PORT: "0", MIGRATE_ON_START: "false", TELEGRAM_API_ROOT: "http://127.0.0.1:9" });
		await node.waitForOutput(/schema is behind this build \(pending: [^)]+\).*`npm run migrate -- up`/, 25_000);
		const base = `http://127.0.0.1:${port}`;
		expect((await fetch(`${base}/health`)).status).toBe(200);
		const ready = await fetch(`${base}/ready`);
		expect({ status: ready.status, body: await ready.json() }).toEqual({ status: 503, body: { status: "unavailable", reason: "schema_behind" } });
		// No route is served on the old schema: a client is told to come back.
		const early = await fetch(`${base}/api/v1/chats`);
		expect({ status: early.status, retryAfter: early.headers.get("retry-after"), body: await early.json() }).toMatchObject({ status: 503, retryAfter: "5", body: { error: { code: "UNAVAILABLE" } } });
		expect(node.output()).not.toMatch(/Gateway node \S+ ready/);

		// The migration job finishes.
		const db = await openDatabase(loadConfig({ DATA_DIR: dataDir }).databaseUrl);
		await migrateUp(db);
		await db.close();
		await node.waitForOutput(/Gateway node \S+ ready/, 15_000);
		expect((await fetch(`${base}/ready`)).status).toBe(200);
	}, 60_000);
});
