import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { start } from "node:repl";
import { PassThrough } from "node:stream";
import { historyLine, maskSecrets, redactHistory } from "../../lib/repl/secrets";

describe("maskSecrets (the REPL's env command)", () => {
	it("masks secret-named variables and the passwords of URLs, and keeps the rest", () => {
		const env: NodeJS.ProcessEnv = {
			JWT_SECRET: "s".repeat(40),
			TOKEN_ENCRYPTION_KEYS: "k1:abc,k0:def",
			ADMIN_PASSWORD: "correct horse battery",
			METRICS_TOKEN: "scrape",
			DATABASE_URL: "mysql://gateway:db-pass@db:3306/tgw",
			TRANSPORTER: "nats://a:nats-pass@n1:4222, nats://n2:4222",
			REDIS_URL: "redis://redis:6379",
			PORT: "3000",
			EMPTY_SECRET: "",
		};
		maskSecrets(env);
		expect(env).toEqual({
			JWT_SECRET: "[redacted]",
			TOKEN_ENCRYPTION_KEYS: "[redacted]",
			ADMIN_PASSWORD: "[redacted]",
			METRICS_TOKEN: "[redacted]",
			DATABASE_URL: "mysql://gateway:%5Bredacted%5D@db:3306/tgw",
			TRANSPORTER: "nats://a:%5Bredacted%5D@n1:4222,nats://n2:4222",
			REDIS_URL: "redis://redis:6379",
			PORT: "3000",
			EMPTY_SECRET: "",
		});
	});
});

describe("historyLine (what the REPL history keeps)", () => {
	it.each([
		["bots add 123456:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA --name Ops", "bots add <token> --name Ops"],
		["  bots   add '123:abc'", "  bots   add <token>"],
		["bots add --name x", "bots add --name x"],
		["users create bob --password hunter2 --role admin", "users create bob --password <password> --role admin"],
		['users create bob --password="two words"', "users create bob --password=<password>"],
		// Found by an audit: an option before the token, and action calls, kept the secret.
		["bots add --name Shop 123456789:AAHsecretTOKENpartXYZ0123456789", "bots add --name Shop <token>"],
		["bots add --name=Shop 123456789:AAHsecretTOKENpartXYZ0123456789", "bots add --name=Shop <token>"],
		["call bots.create --token 123456789:AAHsecretTOKENpartXYZ0123456789", "call bots.create --token <token>"],
		['call bots.create {"token": "123456789:AAHsecretTOKENpartXYZ0123456789"}', 'call bots.create {"token": "<token>"}'],
		["call auth.login --username bob --password hunter2", "call auth.login --username bob --password <password>"],
		["call auth.resolve --credential tgw_abcdefghijklmnopqrstuvwxyz0123456789", "call auth.resolve --credential <credential>"],
		["call auth.refresh --refresh_token=eyJhbGciOi.x.y", "call auth.refresh --refresh_token=<refresh_token>"],
		["apikeys show tgw_abcdefghijklmnopqrstuvwxyz0123456789", "apikeys show <api_key>"],
		["users create bob --role viewer", "users create bob --role viewer"],
		["bots list", "bots list"],
	])("%s", (line, kept) => {
		expect(historyLine(line)).toBe(kept);
	});
});

describe("redactHistory (a REPL on a terminal, with its history file)", () => {
	it("writes `bots add` and `--password` lines to the history file without the secret", async () => {
		const dir = mkdtempSync(join(tmpdir(), "tgw-repl-history-"));
		const input = new PassThrough();
		const output = new PassThrough();
		output.resume();
		const server = start({ input, output, terminal: true, prompt: "> ", eval: (_cmd, _ctx, _file, done) => done(null, undefined) });
		try {
			await new Promise<void>((resolve, reject) => server.setupHistory(join(dir, "history"), (err) => (err ? reject(err) : resolve())));
			redactHistory(server);
			input.write("bots add 123456:SECRETSECRETSECRETSECRETSECRETSECRE --name Ops\r");
			input.write("users create bob --password hunter2hunter2\r");
			const file = join(dir, "history");
			const deadline = Date.now() + 5_000;
			while (!(existsSync(file) && readFileSync(file, "utf8").includes("users create")) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
			const written = readFileSync(file, "utf8");
			expect(written.split("\n")).toEqual(["users create bob --password <password>", "bots add <token> --name Ops"]);
			expect((server as unknown as { history: string[] }).history).toEqual(["users create bob --password <password>", "bots add <token> --name Ops"]);
		} finally {
			server.close();
			rmSync(dir, { recursive: true, force: true });
		}
	});
});
