/**
 * `npm run bench`: runs every test/bench/*.bench.ts in turn (one process each, never two at once),
 * collects the figures each one's report() writes, and writes test/bench/reports/<date>.md and
 * latest.md, then the README's "Benchmark figures" section from it. A bench that fails is reported
 * as such and the others still run; the exit code is 1 then.
 *
 *   npm run bench [-- --only auth,ingest] [--dir <dir>] [--out <dir>] [--readme <file> | --no-readme] [-- <args for every bench>]
 *
 * The full set takes several minutes and loads every core: run it on a quiet machine.
 */
import { spawn } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { basename, join, relative, resolve } from "node:path";
import { parseArgs } from "node:util";
import { formatReport, machineInfo, readmeSection, spliceReadme, type BenchResult, type BenchRun } from "./support/summary";

const ROOT = resolve(__dirname, "..", "..");

interface Options {
	dir: string;
	out: string;
	readme: string | null;
	only: string[] | null;
	benchArgs: string[];
}

function options(argv: string[]): Options {
	const split = argv.indexOf("--");
	const own = split === -1 ? argv : argv.slice(0, split);
	const { values } = parseArgs({
		args: own,
		options: {
			only: { type: "string" },
			dir: { type: "string" },
			out: { type: "string" },
			readme: { type: "string" },
			"no-readme": { type: "boolean" },
		},
	});
	return {
		dir: resolve(values.dir ?? join(ROOT, "test", "bench")),
		out: resolve(values.out ?? join(ROOT, "test", "bench", "reports")),
		readme: values["no-readme"] ? null : resolve(values.readme ?? join(ROOT, "README.md")),
		only: values.only ? values.only.split(",").map((s) => s.trim().replace(/\.bench\.ts$/, "")).filter(Boolean) : null,
		benchArgs: split === -1 ? [] : argv.slice(split + 1),
	};
}

export function benchFiles(dir: string, only: string[] | null): string[] {
	const files = readdirSync(dir).filter((f) => f.endsWith(".bench.ts")).sort();
	if (!only) return files.map((f) => join(dir, f));
	const unknown = only.filter((name) => !files.includes(`${name}.bench.ts`));
	if (unknown.length > 0) throw new Error(`--only: no ${unknown.map((n) => `${n}.bench.ts`).join(", ")} in ${dir} (there are: ${files.join(", ")})`);
	return files.filter((f) => only.includes(f.replace(/\.bench\.ts$/, ""))).map((f) => join(dir, f));
}

/** One bench in a process of its own; its report() writes into a directory of this run only. */
async function runBench(file: string, args: string[]): Promise<BenchRun> {
	const results = mkdtempSync(join(tmpdir(), "tgw-bench-results-"));
	const started = performance.now();
	const name = relative(ROOT, file);
	console.log(`\n=== ${name} ===`);
	try {
		const code = await new Promise<number | null>((done, fail) => {
			const child = spawn(process.execPath, ["--import", "tsx", file, ...args], {
				cwd: ROOT,
				env: { ...process.env, BENCH_RESULTS_DIR: results },
				stdio: "inherit",
			});
			child.once("error", fail);
			child.once("exit", (exitCode, signal) => done(signal ? null : exitCode));
		});
		const reported = readdirSync(results)
			.filter((f) => f.endsWith(".json"))
			.sort()
			.map((f) => JSON.parse(readFileSync(join(results, f), "utf8")) as BenchResult);
		const durationSeconds = (performance.now() - started) / 1000;
		const failure = code !== 0 ? `exited with ${code ?? "a signal"}` : reported.length === 0 ? "exited without reporting any figure" : undefined;
		return { file: name, results: reported, durationSeconds, ...(failure ? { failure } : {}) };
	} finally {
		rmSync(results, { recursive: true, force: true });
	}
}

export async function main(argv: string[]): Promise<number> {
	const opts = options(argv);
	const files = benchFiles(opts.dir, opts.only);
	if (files.length === 0) throw new Error(`no *.bench.ts in ${opts.dir}`);
	const runs: BenchRun[] = [];
	for (const file of files) runs.push(await runBench(file, opts.benchArgs));

	const date = new Date();
	const command = ["npm run bench", ...(argv.length > 0 ? ["--", ...argv] : [])].join(" ");
	const report = formatReport(runs, machineInfo(), date, command);
	mkdirSync(opts.out, { recursive: true });
	const dated = join(opts.out, `${date.toISOString().slice(0, 10)}.md`);
	writeFileSync(dated, report);
	writeFileSync(join(opts.out, "latest.md"), report);
	console.log(`\nReport: ${relative(process.cwd(), dated)} and latest.md`);
	if (opts.readme) {
		if (!existsSync(opts.readme)) throw new Error(`--readme: ${opts.readme} does not exist`);
		writeFileSync(opts.readme, spliceReadme(readFileSync(opts.readme, "utf8"), readmeSection(report)));
		console.log(`Updated the "Benchmark figures" section of ${basename(opts.readme)}`);
	}
	const failed = runs.filter((r) => r.failure);
	for (const run of failed) console.error(`${run.file}: ${run.failure}`);
	return failed.length > 0 ? 1 : 0;
}

if (require.main === module) {
	main(process.argv.slice(2)).then(
		(code) => process.exit(code),
		(err: unknown) => {
			console.error((err as Error).message);
			process.exit(2);
		},
	);
}
