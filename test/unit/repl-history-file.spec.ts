/**
 * redactHistory as bin/repl.ts uses it: right after broker.repl() returns, while moleculer-repl's
 * setupHistory is still reading ~/.moleculer_repl_history. When that read finishes, node replaces
 * `server.history` with a new array; a redactHistory holding the old one redacted nothing, and bot
 * tokens and typed passwords reached the file in clear.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { start } from "node:repl";
import { PassThrough } from "node:stream";
import { redactHistory } from "../../lib/repl/secrets";

describe("redactHistory in the order bin/repl.ts uses it (setupHistory not awaited)", () => {
	it.each([
		["no history file yet", null],
		["an existing history file", "stats\nusers list"],
	])("keeps the token and the password out of the file (%s)", async (_label, existing) => {
		const dir = mkdtempSync(join(tmpdir(), "tgw-repl-history-"));
		const file = join(dir, "history");
		if (existing !== null) writeFileSync(file, existing);
		const input = new PassThrough();
		const output = new PassThrough();
		output.resume();
		const server = start({ input, output, terminal: true, prompt: "> ", eval: (_cmd, _ctx, _file, done) => done(null, undefined) });
		try {
			// moleculer-repl 0.7 (src/index.js): setupHistory(file, cb) with no wait; bin/repl.ts then calls redactHistory.
			const ready = new Promise<void>((resolve, reject) => server.setupHistory(file, (err) => (err ? reject(err) : resolve())));
			redactHistory(server);
			await ready;
			input.write("bots add 123456:SECRETSECRETSECRETSECRETSECRETSECRE --name Ops\r");
			input.write("users create bob --password hunter2hunter2\r");
			input.write("stats\r");
			const deadline = Date.now() + 5_000;
			while (!(existsSync(file) && readFileSync(file, "utf8").includes("stats\n")) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
			await new Promise((r) => setTimeout(r, 100));
			const written = readFileSync(file, "utf8");
			expect(written).not.toContain("SECRETSECRET");
			expect(written).not.toContain("hunter2hunter2");
			expect(written).toContain("bots add <token> --name Ops");
			expect(written).toContain("users create bob --password <password>");
		} finally {
			server.close();
			rmSync(dir, { recursive: true, force: true });
		}
	});
});
