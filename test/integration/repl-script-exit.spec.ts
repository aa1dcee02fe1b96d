/**
 * `npm run repl < script.txt` (README: scripting the REPL): the exit status says whether every
 * gateway command of the script succeeded, so a deploy script can stop on a failed one.
 */
import { spawn } from "node:child_process";
import { join } from "node:path";
import { tempDir } from "../support/harness";

const ROOT = join(__dirname, "..", "..");

function runScript(lines: string[]): Promise<{ code: number | null; output: string }> {
	const dir = tempDir("tgw-repl-script-");
	const child = spawn(process.execPath, ["--import", "tsx", join(ROOT, "bin", "repl.ts")], {
		cwd: ROOT,
		env: { PATH: process.env.PATH ?? "", HOME: dir, DATA_DIR: dir, HOST: "127.0.0.1", PORT: "0", GRPC_PORT: "0", TELEGRAM_API_ROOT: "http://127.0.0.1:9", ADMIN_PASSWORD: "repl-admin-password", LOG_LEVEL: "warn" },
		stdio: ["pipe", "pipe", "pipe"],
	});
	let output = "";
	child.stdout.on("data", (d) => (output += d));
	child.stderr.on("data", (d) => (output += d));
	child.stdin.end(lines.map((line) => `${line}\n`).join(""));
	return new Promise((resolve) => child.once("exit", (code) => resolve({ code, output })));
}

describe("a scripted REPL run", () => {
	it("exits 0 when every command succeeded", async () => {
		const run = await runScript(["users list", "apikeys list"]);
		expect(run.output).toContain("admin");
		expect(run.code).toBe(0);
	}, 60_000);

	it("exits 1 when a command failed, after running the rest", async () => {
		const run = await runScript(["users disable nobody-by-this-name", "users create scripted-user"]);
		expect(run.output).toMatch(/error: .*nobody-by-this-name/i);
		expect(run.output).toContain("User scripted-user created");
		expect(run.code).toBe(1);
	}, 60_000);
});
