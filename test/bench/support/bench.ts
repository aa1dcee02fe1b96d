/**
 * Shared pieces of the benchmarks: start processes, drive HTTP load with autocannon, and report
 * every figure next to the baseline measured in the same run (this machine is shared and noisy).
 */
import { spawn, type ChildProcess } from "node:child_process";
import { mkdirSync, rmSync, writeFileSync } from "node:fs";
import { cpus, totalmem } from "node:os";
import { join } from "node:path";
import autocannon from "autocannon";
import { freePort, GATEWAY_NODE_FLAGS } from "../../support/processes";
import { tempDir } from "../../support/harness";

const ROOT = join(__dirname, "..", "..", "..");
export const REPORTS_DIR = join(ROOT, "test", "bench", "reports");

export interface Started {
	port: number;
	child: ChildProcess;
	stop(): Promise<void>;
}

/** Settings of support/alloc-profile.ts, passed on to the processes it profiles. */
const ALLOC_PROFILE_ENV = ["BENCH_ALLOC_PROFILE", "BENCH_ALLOC_PROFILE_DELAY_MS"];

async function startProcess(script: string, env: Record<string, string>, ready: RegExp | string): Promise<Started> {
	const port = Number(env.PORT);
	// BENCH_PROFILE=<dir> writes a V8 CPU profile of every process a benchmark starts, and
	// BENCH_ALLOC_PROFILE=<dir> a sampling profile of where they allocate (support/alloc-profile.ts).
	const profile = process.env.BENCH_PROFILE ? ["--cpu-prof", `--cpu-prof-dir=${process.env.BENCH_PROFILE}`] : [];
	const allocProfile = process.env.BENCH_ALLOC_PROFILE ? ["--import", join(ROOT, "test", "bench", "support", "alloc-profile.ts")] : [];
	// Every server, the echo baselines included, runs with the gateway's production V8 flags, so a
	// ratio compares the code, not the flags.
	const child = spawn(process.execPath, [...GATEWAY_NODE_FLAGS, ...profile, "--import", "tsx", ...allocProfile, script], {
		cwd: ROOT,
		env: {
			PATH: process.env.PATH ?? "",
			HOME: process.env.HOME ?? "",
			// The thread pool's size as `npm start` and the image set it (docs/operations.md).
			UV_THREADPOOL_SIZE: "8",
			...Object.fromEntries(ALLOC_PROFILE_ENV.filter((name) => process.env[name]).map((name) => [name, process.env[name]!])),
			...env,
		},
		stdio: ["ignore", "pipe", "pipe"],
	});
	// A benchmark that fails half-way must not leave its servers running (and loading the machine).
	const killOnExit = () => child.kill("SIGKILL");
	process.once("exit", killOnExit);
	child.once("exit", () => process.removeListener("exit", killOnExit));
	let output = "";
	await new Promise<void>((resolve, reject) => {
		const timer = setTimeout(() => reject(new Error(`${script} did not start:\n${output}`)), 60_000);
		const done = () => {
			clearTimeout(timer);
			clearInterval(poll);
			resolve();
		};
		// A pattern waits for a line of output; a URL is polled until it answers 200.
		const poll = setInterval(() => {
			if (typeof ready === "string") fetch(ready).then((r) => r.ok && done(), () => undefined);
		}, 100);
		child.stdout!.on("data", (chunk: Buffer) => {
			output += chunk.toString();
			if (typeof ready !== "string" && ready.test(output)) done();
		});
		child.stderr!.on("data", (chunk: Buffer) => {
			output += chunk.toString();
			if (process.env.BENCH_ECHO_STDERR) process.stderr.write(`[${script.split("/").pop()}] ${chunk.toString()}`);
		});
		child.once("exit", (code) => reject(new Error(`${script} exited with ${code}:\n${output}`)));
	});
	child.stdout!.resume();
	child.stderr!.resume();
	if (process.env.BENCH_ECHO_STDERR) child.stderr!.on("data", (chunk: Buffer) => process.stderr.write(`[${script.split("/").pop()}] ${chunk.toString()}`));
	return {
		port,
		child,
		stop: () =>
			new Promise<void>((resolve) => {
				if (child.exitCode !== null) return resolve();
				child.once("exit", () => resolve());
				child.kill("SIGTERM");
				setTimeout(() => child.kill("SIGKILL"), 15_000).unref();
			}),
	};
}

/** The bare echo; `workUs`: microseconds of CPU work added to each GET (a calibration point). */
export async function startEcho(workUs = 0): Promise<Started> {
	const port = await freePort();
	return startProcess(join(ROOT, "test", "bench", "support", "echo-server.ts"), { PORT: String(port), ECHO_WORK_US: String(workUs) }, /echo ready/);
}

/**
 * The embedded gateway (every service, SQLite) in its own process. BENCH_GATEWAY_ENV (a JSON object)
 * adds variables for experiments, e.g. '{"METRICS_ENABLED":"false"}'.
 */
export async function startGateway(env: Record<string, string> = {}): Promise<Started> {
	const port = env.PORT ? Number(env.PORT) : await freePort();
	const dataDir = env.DATA_DIR ?? tempDir("tgw-bench-");
	// A data directory made here is removed when the gateway stops (a run's database is some MB).
	const removeDataDir = () => {
		if (env.DATA_DIR === undefined) rmSync(dataDir, { recursive: true, force: true });
	};
	const started = await startProcess(
		join(ROOT, "bin", "gateway.ts"),
		{ DATA_DIR: dataDir, PORT: String(port), GRPC_PORT: String(await freePort()), LOG_LEVEL: "warn", ...env, ...JSON.parse(process.env.BENCH_GATEWAY_ENV ?? "{}") },
		`http://127.0.0.1:${port}/ready`,
	).catch((err: unknown) => {
		removeDataDir();
		throw err;
	});
	return { ...started, stop: () => started.stop().then(removeDataDir) };
}

export interface LoadResult {
	name: string;
	requestsPerSecond: number;
	p50Ms: number;
	p99Ms: number;
	errors: number;
	non2xx: number;
	total: number;
}

export interface LoadOptions {
	name: string;
	url: string;
	method?: "GET" | "POST";
	headers?: Record<string, string>;
	body?: string;
	/** Per-request bodies (e.g. a fresh update_id each time); overrides `body`. */
	requests?: autocannon.Request[];
	connections?: number;
	durationSeconds?: number;
	amount?: number;
}

export async function load(options: LoadOptions): Promise<LoadResult> {
	// autocannon's own averages and durations count in whole sampling seconds; time the responses here.
	let first = 0;
	let last = 0;
	let responses = 0;
	const result = await new Promise<autocannon.Result>((resolve, reject) => {
		const instance = autocannon(
			{
				url: options.url,
				method: options.method ?? "GET",
				headers: options.headers,
				body: options.body,
				requests: options.requests,
				connections: options.connections ?? 64,
				...(options.amount ? { amount: options.amount } : { duration: options.durationSeconds ?? 8 }),
				timeout: 20,
			},
			(err, done) => (err ? reject(err) : resolve(done)),
		);
		instance.on("response", () => {
			last = performance.now();
			if (responses++ === 0) first = last;
		});
	});
	return {
		name: options.name,
		// Completed requests over the time from the first response to the last.
		requestsPerSecond: responses > 1 ? (responses - 1) / ((last - first) / 1000) : 0,
		p50Ms: result.latency.p50,
		p99Ms: result.latency.p99,
		errors: result.errors + result.timeouts,
		non2xx: result.non2xx,
		total: result.requests.total,
	};
}

/** The value at the p-th percentile (nearest rank); NaN for no values. */
export function percentile(values: number[], p: number): number {
	const sorted = [...values].sort((a, b) => a - b);
	return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? Number.NaN;
}

/** Waits until `check` holds, looking every `intervalMs`, for at most `ms`; whether it held. */
export async function until(check: () => boolean | Promise<boolean>, ms: number, intervalMs = 50): Promise<boolean> {
	const deadline = Date.now() + ms;
	while (Date.now() < deadline) {
		if (await check()) return true;
		await new Promise((r) => setTimeout(r, intervalMs));
	}
	return check();
}

export interface Figure {
	name: string;
	value: number;
	unit: string;
	baseline?: { name: string; value: number };
	ratio?: number;
	goal?: string;
	met?: boolean;
}

export function machine(): string {
	return `${cpus().length} cores (${cpus()[0]?.model ?? "?"}), ${Math.round(totalmem() / 2 ** 30)} GiB, Node ${process.version}`;
}

/** Prints the figures and keeps them for `npm run bench`'s report. */
export function report(bench: string, figures: Figure[], notes: string[] = []): void {
	const lines = [`\n## ${bench}`, `${new Date().toISOString()} on ${machine()}`, "", "| figure | value | baseline | ratio | goal |", "|---|---|---|---|---|"];
	for (const f of figures) {
		lines.push(
			`| ${f.name} | ${f.value.toFixed(f.unit === "req/s" || f.unit === "updates/s" ? 0 : 2)} ${f.unit} | ${
				f.baseline ? `${f.baseline.name}: ${f.baseline.value.toFixed(0)}` : "-"
			} | ${f.ratio !== undefined ? f.ratio.toFixed(2) : "-"} | ${f.goal ? `${f.goal} ${f.met ? "(met)" : "(NOT met)"}` : "-"} |`,
		);
	}
	for (const note of notes) lines.push("", note);
	console.log(lines.join("\n"));
	// npm run bench (test/bench/run.ts) gives each bench a directory of its own, so no figure of an earlier run is taken for this one.
	const dir = process.env.BENCH_RESULTS_DIR ?? REPORTS_DIR;
	mkdirSync(dir, { recursive: true });
	writeFileSync(join(dir, `${bench.replace(/[^a-z0-9]+/gi, "-").toLowerCase()}.json`), JSON.stringify({ bench, at: new Date().toISOString(), machine: machine(), figures, notes }, null, 2));
}
