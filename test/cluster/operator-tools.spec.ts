/**
 * The operator tools against a running cluster. `npm run cli` runs auth's actions outside the
 * cluster, then announces its changes to the running nodes: a key revoked from the CLI loses its
 * live WebSocket at once, not at the next periodic check (15 s). `npm run repl` joins as a node
 * that serves no /metrics, so it does not warn that /metrics is open; an api node that does, once.
 */
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { join } from "node:path";
import { ServiceBroker } from "moleculer";
import WebSocket from "ws";
import { http, tempDir } from "../support/harness";
import { NATS_URL, startCluster, type Cluster } from "./support/cluster";

const ROOT = join(__dirname, "..", "..");

/** Runs bin/<script> to its end with `env` (stdin closed at once) and what it printed. */
function run(script: string, env: Record<string, string>, args: string[] = []): Promise<{ code: number | null; output: string }> {
	return new Promise((resolve) => {
		const dir = tempDir("tgw-tool-");
		const child = spawn(process.execPath, ["--import", "tsx", join(ROOT, "bin", script), ...args], {
			cwd: ROOT,
			env: { PATH: process.env.PATH ?? "", HOME: dir, ...env, DATA_DIR: dir },
			stdio: ["pipe", "pipe", "pipe"],
		});
		child.stdin.end();
		let output = "";
		child.stdout.on("data", (d) => (output += d));
		child.stderr.on("data", (d) => (output += d));
		child.on("exit", (code) => resolve({ code, output }));
	});
}

describe("operator tools against a running cluster", () => {
	let cluster: Cluster;
	let listener: ServiceBroker;
	const heard: unknown[] = [];
	let admin: Record<string, string>;
	let base: string;

	beforeAll(async () => {
		cluster = await startCluster([{ name: "api-1", services: ["api", "auth", "realtime"] }]);
		base = cluster.node("api-1").baseUrl;
		// A node of the cluster that notes every auth.changed it hears.
		listener = new ServiceBroker({ namespace: cluster.namespace, nodeID: `listener-${randomBytes(3).toString("hex")}`, transporter: NATS_URL, logger: false, heartbeatInterval: 1, heartbeatTimeout: 5 });
		listener.createService({ name: "listener", events: { "auth.changed": (ctx: { params: unknown }) => void heard.push(ctx.params) } });
		await listener.start();
		const login = await http<{ access_token: string }>(base, "POST", "/api/v1/auth/login", { body: { username: "admin", password: "cluster-admin-password" } });
		admin = { authorization: `Bearer ${login.body.access_token}` };
	}, 120_000);

	afterAll(async () => {
		await listener?.stop();
		await cluster?.stop();
	});

	it("apikey revoke reaches every node: auth.changed is heard, and the key's WebSocket closes at once", async () => {
		const key = await http<{ id: number; key: string }>(base, "POST", "/api/v1/apikeys", { headers: admin, body: { name: "revoked-from-cli" } });
		expect(key.status).toBe(201);
		const ws = new WebSocket(`${base.replace(/^http/, "ws")}/api/v1/ws?token=${key.body.key}`);
		await new Promise((resolve, reject) => ws.once("open", resolve).once("error", reject));
		const closed = new Promise<{ code: number; at: number }>((resolve) => ws.once("close", (code) => resolve({ code, at: Date.now() })));

		const revoke = await run("cli.ts", cluster.env, ["apikeys", "revoke", String(key.body.id)]);
		const revokedAt = Date.now();
		expect(revoke).toEqual({ code: 0, output: `API key ${key.body.id} revoked\n` });
		expect(heard).toContainEqual({ kind: "api_key", id: key.body.id });
		const { code, at } = await closed;
		expect(code).toBe(4401);
		// The announcement closes it within moments; without it, the 15 s periodic check would.
		expect(at - revokedAt).toBeLessThan(2_000);
	}, 60_000);

	it("a REPL node, which serves no /metrics, does not warn that /metrics is open; an api node that serves it warns once", async () => {
		const repl = await run("repl.ts", { ...cluster.env, HOST: "0.0.0.0", LOG_LEVEL: "info" });
		expect(repl.output).toMatch(/Gateway REPL on node/);
		expect(repl.output).not.toMatch(/GET \/metrics is open/);

		const open = await cluster.start({ name: "api-open", services: ["api", "auth", "realtime"], env: { HOST: "0.0.0.0" } });
		expect(open.output().match(/GET \/metrics is open to anyone who reaches 0\.0\.0\.0:\d+/g)).toHaveLength(1);
	}, 60_000);
});
