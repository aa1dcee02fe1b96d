/**
 * A polling bot whose token is sealed under a key TOKEN_ENCRYPTION_KEYS no longer lists (a key
 * removed too early, a database restored without its dev-secrets.json): the node stays up, says
 * which key is missing, and keeps serving (the poller threw outside its try once, and the unhandled
 * rejection killed the process seconds after "ready"; in a cluster every worker taking the lease).
 */
import { randomBytes } from "node:crypto";
import { freePort, spawnGateway, type GatewayProcess } from "../support/processes";
import { tempDir } from "../support/harness";
import { TelegramDouble } from "../support/telegram-double";

describe("a bot sealed under a key that is no longer configured", () => {
	const telegram = new TelegramDouble({ autoCreateBots: true });
	const started: GatewayProcess[] = [];
	afterAll(async () => {
		for (const node of started) if (node.child.exitCode === null) node.kill("SIGKILL");
		await Promise.all(started.map((node) => node.exited));
		await telegram.stop();
	});

	it("does not crash the node", async () => {
		const root = await telegram.start();
		const dataDir = tempDir();
		const port = await freePort();
		const base = `http://127.0.0.1:${port}`;
		const common = { DATA_DIR: dataDir, PORT: String(port), GRPC_PORT: String(await freePort()), TELEGRAM_API_ROOT: root, ADMIN_PASSWORD: "admin-password-1", JWT_SECRET: "j".repeat(40) };

		const first = spawnGateway("first", { ...common, TOKEN_ENCRYPTION_KEYS: `old:${randomBytes(32).toString("base64")}` });
		started.push(first);
		await first.waitForOutput(/ ready at /);
		const login = (await (await fetch(`${base}/api/v1/auth/login`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ username: "admin", password: "admin-password-1" }) })).json()) as { access_token: string };
		const created = await fetch(`${base}/api/v1/bots`, { method: "POST", headers: { "content-type": "application/json", authorization: `Bearer ${login.access_token}` }, body: JSON.stringify({ token: "424242424:AAExampleExampleExampleExampleExample" }) });
		expect(created.status).toBe(201);
		first.kill("SIGTERM");
		await first.exited;

		const second = spawnGateway("second", { ...common, TOKEN_ENCRYPTION_KEYS: `new:${randomBytes(32).toString("base64")}` });
		started.push(second);
		await second.waitForOutput(/ ready at /);
		const outcome = await Promise.race([second.exited.then(() => "exited" as const), new Promise<"alive">((r) => setTimeout(() => r("alive"), 8_000))]);
		expect({ outcome, output: outcome === "exited" ? second.output().slice(-600) : "" }).toEqual({ outcome: "alive", output: "" });
		expect((await fetch(`${base}/health`)).status).toBe(200);
		expect(second.output()).toMatch(/"old"/);
	}, 60_000);
});
