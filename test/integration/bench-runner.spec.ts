/**
 * `npm run bench` (test/bench/run.ts) end to end on tiny fake benches in a temporary directory: each
 * runs in a process of its own and reports through the real support/bench.ts report(); the runner
 * writes the dated and latest reports and rewrites only its section of a README. The real benches
 * are never started here.
 */
import { spawn } from "node:child_process";
import { readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { tempDir } from "../support/harness";
import { README_END } from "../bench/support/summary";

const ROOT = join(__dirname, "..", "..");
const SUPPORT = join(ROOT, "test", "bench", "support", "bench");

const FAKE_OK = `import { report } from ${JSON.stringify(SUPPORT)};
const extra = process.argv.slice(2).join(" ");
report("Fake throughput", [
	{ name: "fake req/s", value: 1234.56, unit: "req/s", baseline: { name: "fake echo", value: 2000 }, ratio: 0.61728, goal: ">= 0.5", met: true },
	{ name: "fake latency", value: 1.5, unit: "ms" },
], ["args: " + (extra || "none")]);
`;
const FAKE_CRASH = `console.log("starting"); process.exit(3);\n`;
const FAKE_SILENT = `console.log("nothing to report");\n`;

function runner(args: string[]): Promise<{ code: number | null; output: string }> {
	return new Promise((resolve, reject) => {
		const child = spawn(process.execPath, ["--import", "tsx", join(ROOT, "test", "bench", "run.ts"), ...args], { cwd: ROOT, stdio: ["ignore", "pipe", "pipe"] });
		let output = "";
		child.stdout.on("data", (c: Buffer) => (output += c.toString()));
		child.stderr.on("data", (c: Buffer) => (output += c.toString()));
		child.once("error", reject);
		child.once("exit", (code) => resolve({ code, output }));
	});
}

describe("npm run bench", () => {
	let dir: string;
	let out: string;
	let readme: string;
	beforeAll(() => {
		dir = tempDir("tgw-bench-runner-");
		out = join(dir, "reports");
		readme = join(dir, "README.md");
		writeFileSync(join(dir, "alpha.bench.ts"), FAKE_OK);
		writeFileSync(join(dir, "crash.bench.ts"), FAKE_CRASH);
		writeFileSync(join(dir, "silent.bench.ts"), FAKE_SILENT);
		writeFileSync(join(dir, "helper.ts"), "export {};\n"); // not a bench: never run
	});
	afterAll(() => rmSync(dir, { recursive: true, force: true }));

	it("--only runs the named bench, passes arguments after --, and writes both reports and the README section", async () => {
		writeFileSync(readme, "# Project\n\nIntro.\n\n## Later\n\nKept.\n");
		const { code, output } = await runner(["--dir", dir, "--out", out, "--readme", readme, "--only", "alpha", "--", "--skip-cluster"]);
		expect({ code, output }).toMatchObject({ code: 0 });
		const files = readdirSync(out).sort();
		expect(files).toEqual([expect.stringMatching(/^\d{4}-\d{2}-\d{2}\.md$/), "latest.md"]);
		const latest = readFileSync(join(out, "latest.md"), "utf8");
		expect(readFileSync(join(out, files[0]!), "utf8")).toBe(latest);
		expect(latest).toContain("- benches: 1 run, 0 failed; goals: 1 of 1 met");
		expect(latest).toMatch(/- machine: .+, \d+ cores, [\d.]+ GiB, Node v\d+/);
		expect(latest).toContain("| fake req/s | 1235 req/s | fake echo: 2000 | 0.62 | >= 0.5 (met) |");
		expect(latest).toContain("| fake latency | 1.50 ms | - | - | - |");
		expect(latest).toContain("args: --skip-cluster");
		expect(latest).not.toContain("crash");

		const text = readFileSync(readme, "utf8");
		expect(text.startsWith("# Project\n\nIntro.\n\n## Later\n\nKept.\n\n## Benchmark figures\n\n<!-- bench-figures:start")).toBe(true);
		expect(text).toContain("### Fake throughput");
		expect(text.trimEnd().endsWith(README_END)).toBe(true);
	});

	it("runs every bench in turn; one that fails or reports nothing is named in the report, and the exit code is 1", async () => {
		const before = readFileSync(readme, "utf8");
		const { code, output } = await runner(["--dir", dir, "--out", out, "--readme", readme]);
		expect({ code, output }).toMatchObject({ code: 1 });
		expect(output).toMatch(/crash\.bench\.ts: exited with 3/);
		const latest = readFileSync(join(out, "latest.md"), "utf8");
		expect(latest).toContain("- benches: 3 run, 2 failed; goals: 1 of 1 met");
		expect(latest).toMatch(/## .*crash\.bench\.ts: no figures\n\nexited with 3/);
		expect(latest).toMatch(/## .*silent\.bench\.ts: no figures\n\nexited without reporting any figure/);
		expect(latest).toContain("args: none");
		// The section is replaced, not added again.
		const after = readFileSync(readme, "utf8");
		expect(after.split("## Benchmark figures")).toHaveLength(2);
		expect(after.slice(0, after.indexOf("<!--"))).toBe(before.slice(0, before.indexOf("<!--")));
		expect(after).toContain("silent.bench.ts: no figures");
	});

	it("refuses an --only that names no bench, before running anything", async () => {
		const { code, output } = await runner(["--dir", dir, "--out", join(dir, "unused"), "--no-readme", "--only", "nope"]);
		expect(code).toBe(2);
		expect(output).toContain("--only: no nope.bench.ts");
		expect(readdirSync(dir)).not.toContain("unused");
	});
});
