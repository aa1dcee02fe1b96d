/**
 * A database migrated by a newer build (an old node restarting during a rollout, or the code rolled
 * back): the node stays alive and unready, names the migrations it does not know and what to do,
 * serves no request, and starts once they are reverted.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { loadConfig } from "../../lib/config";
import { openDatabase } from "../../lib/db/connection";
import { migrateUp } from "../../lib/db/migrator";
import { freePort, spawnGateway, type GatewayProcess } from "../support/processes";

const NEWER = "9999-from-a-newer-build";

async function onTheDatabase(dataDir: string, sql: string): Promise<void> {
	const db = await openDatabase(loadConfig({ DATA_DIR: dataDir }).databaseUrl);
	try {
		await db.sequelize.query(sql);
	} finally {
		await db.close();
	}
}

describe("gateway start on a schema ahead of the build", () => {
	let dataDir: string;
	let node: GatewayProcess | undefined;
	beforeAll(async () => {
		dataDir = mkdtempSync(join(tmpdir(), "tgw-schema-ahead-"));
		const db = await openDatabase(loadConfig({ DATA_DIR: dataDir }).databaseUrl);
		await migrateUp(db);
		await db.close();
		await onTheDatabase(dataDir, `INSERT INTO schema_migrations (name) VALUES ('${NEWER}')`);
	});
	afterAll(async () => {
		node?.kill("SIGKILL");
		await node?.exited;
		rmSync(dataDir, { recursive: true, force: true });
	});

	it("waits unready, naming the unknown migrations and what to do, and starts once they are reverted", async () => {
		const port = await freePort();
		node = spawnGateway("ahead", { DATA_DIR: dataDir, PORT: String(port), GRPC_PORT: "0", TELEGRAM_API_ROOT: "http://127.0.0.1:9" });
		await node.waitForOutput(new RegExp(`migrations this build does not know \\(${NEWER}\\).*deploy the newer build, or revert them with the newer build's \`npm run migrate -- down --to ${NEWER}\``), 25_000);
		const base = `http://127.0.0.1:${port}`;
		expect((await fetch(`${base}/health`)).status).toBe(200);
		const ready = await fetch(`${base}/ready`);
		expect({ status: ready.status, body: await ready.json() }).toEqual({ status: 503, body: { status: "unavailable", reason: "schema_ahead" } });
		// No route is served on a schema this code does not know: a client is told to come back.
		const early = await fetch(`${base}/api/v1/chats`);
		expect({ status: early.status, retryAfter: early.headers.get("retry-after"), body: await early.json() }).toMatchObject({ status: 503, retryAfter: "5", body: { error: { code: "UNAVAILABLE" } } });
		expect(node.output()).not.toMatch(/Gateway node \S+ ready/);

		// The newer build's `migrate down` reverts its migration.
		await onTheDatabase(dataDir, `DELETE FROM schema_migrations WHERE name = '${NEWER}'`);
		await node.waitForOutput(/Gateway node \S+ ready/, 15_000);
		expect((await fetch(`${base}/ready`)).status).toBe(200);
	}, 60_000);
});
