/**
 * The operator REPL as an operator runs it: `node --import tsx bin/repl.ts` in embedded mode (the
 * whole gateway in the process, REPL on stdin) against the Telegram double, driven line by line
 * through stdin, asserting on what it prints; HTTP checks that its changes took effect.
 */
import { spawn, type ChildProcessWithoutNullStreams } from "node:child_process";
import { join } from "node:path";
import { http, tempDir } from "../support/harness";
import { freePort } from "../support/processes";
import { connectIo, connectWs, type IoClient, type WsClient } from "../support/realtime-clients";
import { ok, startReceiver, type Receiver } from "../support/receivers";
import { TelegramDouble } from "../support/telegram-double";

const ROOT = join(__dirname, "..", "..");
const PROMPT = "tgw $ ";
const ADMIN_PASSWORD = "repl-admin-password";
const JWT_SECRET = "repl-jwt-secret-that-is-long-enough-0123456789";

/** A REPL child process: `run` types one line and returns what it printed before the next prompt. */
class ReplSession {
	private out = "";
	private errors = "";
	private readonly waiters = new Set<() => void>();

	constructor(readonly child: ChildProcessWithoutNullStreams) {
		child.stdout.on("data", (chunk: Buffer) => this.received((this.out += chunk.toString())));
		child.stderr.on("data", (chunk: Buffer) => this.received((this.errors += chunk.toString())));
		child.once("exit", () => this.received(""));
	}

	private received(_text: string): void {
		for (const check of [...this.waiters]) check();
	}

	private waitForPrompt(from: number, timeoutMs: number, what: string): Promise<number> {
		return new Promise((resolve, reject) => {
			const check = () => {
				const at = this.out.indexOf(PROMPT, from);
				if (at !== -1) done(() => resolve(at));
				else if (this.child.exitCode !== null || this.child.signalCode !== null) done(() => reject(new Error(`REPL exited before ${what}.\n${this.transcript()}`)));
			};
			const timer = setTimeout(() => done(() => reject(new Error(`no prompt within ${timeoutMs} ms after ${what}.\n${this.transcript()}`))), timeoutMs);
			const done = (settle: () => void) => {
				clearTimeout(timer);
				this.waiters.delete(check);
				settle();
			};
			this.waiters.add(check);
			check();
		});
	}

	transcript(): string {
		return `--- stdout ---\n${this.out}\n--- stderr ---\n${this.errors}`;
	}

	async started(timeoutMs = 60_000): Promise<void> {
		await this.waitForPrompt(0, timeoutMs, "start");
	}

	async run(line: string, timeoutMs = 20_000): Promise<string> {
		const from = this.out.length;
		this.child.stdin.write(`${line}\n`);
		const at = await this.waitForPrompt(from, timeoutMs, `"${line}"`);
		return this.out.slice(from, at);
	}
}

/** The id in the first data row of a printed table whose row contains `text`. */
function idInRow(output: string, text: string): number {
	const row = output.split("\n").find((line) => line.includes(text) && /^║\s*\d+/.test(line));
	if (!row) throw new Error(`no table row with "${text}" in:\n${output}`);
	return Number(/^║\s*(\d+)/.exec(row)![1]);
}

async function eventually<T>(probe: () => Promise<T | undefined>, what: string, timeoutMs = 15_000): Promise<T> {
	const deadline = Date.now() + timeoutMs;
	for (;;) {
		const value = await probe();
		if (value !== undefined) return value;
		if (Date.now() > deadline) throw new Error(`${what} did not happen within ${timeoutMs} ms`);
		await new Promise((r) => setTimeout(r, 100));
	}
}

describe("operator REPL (npm run repl), embedded", () => {
	const telegram = new TelegramDouble();
	let receiver: Receiver;
	let repl: ReplSession;
	let base: string;
	let adminToken: string;
	const clients: Array<IoClient | WsClient> = [];

	const api = <T = Record<string, unknown>>(method: string, path: string, init: { body?: unknown; headers?: Record<string, string> } = {}) =>
		http<T>(`${base}/api/v1`, method, path, { ...init, headers: { ...(adminToken ? { authorization: `Bearer ${adminToken}` } : {}), ...init.headers } });

	beforeAll(async () => {
		const telegramRoot = await telegram.start();
		receiver = await startReceiver(ok());
		const port = await freePort();
		base = `http://127.0.0.1:${port}`;
		const dir = tempDir("tgw-repl-");
		const child = spawn(process.execPath, ["--import", "tsx", join(ROOT, "bin", "repl.ts")], {
			cwd: ROOT,
			// HOME: moleculer-repl keeps its history in ~/.moleculer_repl_history.
			env: {
				PATH: process.env.PATH ?? "",
				HOME: dir,
				DATA_DIR: dir,
				HOST: "127.0.0.1",
				PORT: String(port),
				GRPC_PORT: "0",
				TELEGRAM_API_ROOT: telegramRoot,
				ADMIN_PASSWORD,
				JWT_SECRET,
				BACKUP_URL: "https://backup:hunter2-password@backup.example/db",
				WEBHOOK_ALLOW_PRIVATE: "true",
				LOG_LEVEL: "warn",
			},
			stdio: ["pipe", "pipe", "pipe"],
		});
		repl = new ReplSession(child);
		await repl.started();
		const login = await http<{ access_token: string }>(`${base}/api/v1`, "POST", "/auth/login", { body: { username: "admin", password: ADMIN_PASSWORD } });
		expect(login.status).toBe(200);
		adminToken = login.body.access_token;
	}, 90_000);

	afterAll(async () => {
		for (const client of clients) client.close();
		if (repl && repl.child.exitCode === null && repl.child.signalCode === null) {
			const exited = new Promise((resolve) => repl.child.once("exit", resolve));
			repl.child.kill("SIGKILL");
			await exited;
		}
		await receiver?.close();
		await telegram.stop();
	});

	it("creates users, refusing bad arguments without leaving the prompt", async () => {
		const created = await repl.run("users create alice --role operator --email alice@example.com");
		expect(created).toMatch(/User alice created \(id \d+\)\./);
		expect(created).toMatch(/Password \(shown once, store it now\): \S{20,}/);
		expect(created).toMatch(/alice\s*│ alice@example\.com\s*│ operator\s*│ yes/);

		expect(await repl.run("users create")).toMatch(/^error: missing <username>\nusage:\n {2}users list/);
		expect(await repl.run("users create bob --role superuser")).toContain('error: unknown role "superuser" (roles: admin, operator, viewer)');
		expect(await repl.run("users create bob --password short")).toMatch(/error: Invalid password \(VALIDATION_ERROR, 400\)\n {2}password: /);
		expect(await repl.run("users frob")).toContain('error: unknown subcommand "frob"');
		expect(await repl.run("users create alice")).toContain("error: A user with this username already exists (CONFLICT, 409)");

		const list = await repl.run("users list");
		expect(list).toMatch(/admin\s*│ -\s*│ admin\s*│ yes/);
		expect(list).toMatch(/alice\s*│ alice@example\.com\s*│ operator\s*│ yes/);
		expect(list).not.toContain("bob");
	});

	it("creates, lists and revokes an API key; the gateway refuses it once revoked", async () => {
		expect(await repl.run("apikeys create --name ci")).toContain("error: --user is required");
		expect(await repl.run("apikeys create --user nobody --name ci")).toContain('error: no user named "nobody"');

		const created = await repl.run("apikeys create --user alice --name ci-deploy --rate-limit 50");
		const match = /API key (\d+) created\. Key \(shown once, store it now\): (\S+)/.exec(created);
		expect(match).not.toBeNull();
		const [, id, key] = match!;
		const me = await http<{ type: string; name: string }>(`${base}/api/v1`, "GET", "/auth/me", { headers: { "x-api-key": key! } });
		expect(me.status).toBe(200);
		expect(me.body).toMatchObject({ type: "api_key", name: "ci-deploy" });

		const listed = await repl.run("apikeys list --user alice");
		expect(idInRow(listed, "ci-deploy")).toBe(Number(id));
		expect(listed).toMatch(/ci-deploy\s*│ tgw_\w+\s*│ -\s*│ 50\s*│ -\s*│ -/);

		expect(await repl.run("apikeys revoke abc")).toContain('error: API key id must be a positive whole number, got "abc"');
		expect(await repl.run("apikeys revoke 99999")).toContain("error: API key not found (NOT_FOUND, 404)");
		expect(await repl.run(`apikeys revoke ${id}`)).toContain(`API key ${id} revoked`);

		const refused = await http(`${base}/api/v1`, "GET", "/auth/me", { headers: { "x-api-key": key! } });
		expect(refused.status).toBe(401);
		expect(await repl.run("apikeys list")).toMatch(new RegExp(`ci-deploy\\s*│ tgw_\\w+\\s*│ -\\s*│ 50\\s*│ -\\s*│ \\d{4}-\\d\\d-\\d\\dT`));
	});

	it("adds a bot through Telegram (the double), lists it and shows its webhook", async () => {
		expect(await repl.run("bots add not-a-token")).toContain("error: Invalid token (VALIDATION_ERROR, 400)");
		const token = telegram.addBot({ username: "repl_ops_bot", first_name: "Ops" });
		const added = await repl.run(`bots add ${token} --name "Ops desk"`);
		expect(added).toMatch(/Bot @repl_ops_bot added \(id \d+, polling mode\)\./);
		const botId = idInRow(added, "repl_ops_bot");

		const list = await repl.run("bots list");
		expect(list).toMatch(/repl_ops_bot\s*│ Ops desk\s*│ \d+\s*│ polling\s*│ yes/);
		expect(list).not.toContain(token);
		expect(await repl.run(`bots webhook-info ${botId}`)).toMatch(/webhook_set\s*│ no/);
		// The round the docs tell operators to run after changing PUBLIC_URL (a polling bot stays so).
		expect(await repl.run("bots reconcile")).toMatch(new RegExp(`Reconciled 1 bot\\(s\\)\\.[\\s\\S]*║ ${botId}\\s*│ ok`));
		expect(await repl.run("bots remove")).toContain("error: missing <id>");
		expect(await repl.run("bots rotate-key")).toMatch(/Active key "dev1": 0 bot\(s\)( and 0 webhook\(s\))? re-sealed\./);

		// A user writes: the chat exists, grants can be given on it.
		telegram.userSends(token, { chat_id: 4242, text: "hello from a user" });
		const chatId = await eventually(async () => {
			const chats = await api<{ data: Array<{ id: number }> }>("GET", "/chats");
			return chats.body.data[0]?.id;
		}, "the user's chat");

		expect(await repl.run(`grants grant ${chatId} --user alice fly`)).toContain('error: unknown right "fly"');
		expect(await repl.run(`grants grant ${chatId} read`)).toContain("error: give exactly one of --user <user> and --key <api key id>");
		expect(await repl.run(`grants grant ${chatId} --user alice read send`)).toMatch(/Granted on chat \d+\.[\s\S]*│ yes\s*│ yes\s*│ no/);
		expect(await repl.run(`grants revoke ${chatId} --user alice send`)).toMatch(/Revoked can_send on chat \d+\.[\s\S]*│ yes\s*│ no\s*│ no/);
		expect(await repl.run(`grants list ${chatId}`)).toMatch(/│ yes\s*│ no\s*│ no/);
		expect(await repl.run(`grants revoke ${chatId} --user alice`)).toMatch(/Grant \d+ on chat \d+ removed\./);
		expect(await repl.run(`grants list ${chatId}`)).toContain("(none)");
	});

	it("tests, replays and retries webhook deliveries", async () => {
		const webhook = await api<{ id: number }>("POST", "/webhooks", { body: { url: receiver.url, scope: "all", event_types: ["new_message"] } });
		expect(webhook.status).toBe(201);
		const id = webhook.body.id;
		expect(await repl.run("webhooks list")).toMatch(new RegExp(`║ ${id}\\s*│ ${receiver.url.replace(/[/.]/g, "\\$&")}\\s*│ all`));

		expect(await repl.run(`webhooks test ${id}`)).toMatch(/ok\s*│ yes[\s\S]*status_code\s*│ 200/);
		await receiver.waitForCount(1);
		expect(receiver.requests[0]!.body?.event).toBe("ping");

		expect(await repl.run(`webhooks replay ${id}`)).toContain("error: give exactly one of --since and --since-seq");
		expect(await repl.run(`webhooks replay ${id} --since 1h`)).toMatch(/Replay of webhook \d+: [1-9]\d* deliveries scheduled\./);
		await receiver.waitFor((requests) => requests.some((r) => r.body?.event === "new_message"), 15_000, "the replayed message");

		const delivered = await eventually(async () => {
			const out = await repl.run(`deliveries --status succeeded --webhook ${id}`);
			return out.includes("new_message") ? out : undefined;
		}, "a succeeded delivery");
		const deliveryId = idInRow(delivered, "new_message");
		expect(await repl.run("deliveries")).toMatch(/Deliveries \(dead\)\n {2}\(none\)/);
		expect(await repl.run("deliveries retry 99999999")).toContain("error: no delivery 99999999");
		const messages = () => receiver.requests.filter((r) => r.body?.event === "new_message");
		const before = messages().length;
		expect(await repl.run(`webhooks retry ${deliveryId}`)).toContain(`Delivery ${deliveryId} (webhook ${id}) is due again now.`);
		await receiver.waitFor(() => messages().length > before, 15_000, "the retried delivery");
		expect(messages().at(-1)!.headers["webhook-id"]).toBe(messages()[0]!.headers["webhook-id"]);
	});

	it("shows stats with numbers: traffic, live connections, queue and deliveries", async () => {
		clients.push(await connectIo(base, { token: adminToken }));
		clients.push(await connectWs(base, `?token=${adminToken}`));
		expect(await repl.run("stats --window 0")).toContain("error: --window must be a whole number from 1 to 3600");
		const stats = await repl.run("stats --window 600");
		expect(stats).toMatch(/updates\/s\s*│ \d+\.\d\d/);
		expect(stats).toMatch(/updates \(last 600 s\)\s*│ [1-9]\d*/);
		expect(stats).toMatch(/events emitted \(last 600 s\)\s*│ [1-9]\d*/);
		expect(stats).toMatch(/event log head \(seq\)\s*│ [1-9]\d*/);
		expect(stats).toMatch(/realtime\s*│ 1\s*│ 1\s*│ 0\s*│ 0/);
		expect(stats).toMatch(/grpc\s*│ 0\s*│ 0\s*│ 0\s*│ 0/);
		expect(stats).toContain("Outbound queue (0 queued)");
		expect(stats).toMatch(/active webhooks\s*│ 1/);
		expect(stats).toMatch(/breakers closed \/ open \/ half-open\s*│ 1 \/ 0 \/ 0/);
	});

	it("env shows which secrets are set, never their values (moleculer-repl prints the whole environment)", async () => {
		const output = await repl.run("env");
		expect(output).toContain("JWT_SECRET");
		expect(output).toContain("backup.example");
		for (const secret of [JWT_SECRET, ADMIN_PASSWORD, "hunter2-password"]) expect(output).not.toContain(secret);
		// The gateway still signs with the secret it read at start.
		expect((await api("GET", "/auth/me")).status).toBe(200);
	});

	it("keeps working after errors, and leaves cleanly at the end of its input, with status 1 since a command failed", async () => {
		expect(await repl.run("deliveries --status lost")).toContain("error: --status must be one of");
		expect(await repl.run("users disable alice")).toMatch(/User alice disabled[\s\S]*operator\s*│ no/);
		const exited = new Promise<number | null>((resolve) => repl.child.once("exit", (code) => resolve(code)));
		repl.child.stdin.end();
		// stdin is a pipe here, as for `npm run repl < script.txt`: failed commands make the exit status 1.
		expect(await exited).toBe(1);
		expect(repl.transcript()).toContain("stopped cleanly");
	});
});
