/** Spawning real gateway processes (bin/gateway.ts) for shutdown and cluster tests. */
import { spawn, type ChildProcess } from "node:child_process";
import { createServer } from "node:net";
import { join } from "node:path";

const ROOT = join(__dirname, "..", "..");

export interface GatewayProcess {
	name: string;
	child: ChildProcess;
	output: () => string;
	exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
	waitForOutput(pattern: RegExp, timeoutMs?: number): Promise<void>;
	kill(signal?: NodeJS.Signals): void;
}

export async function freePort(): Promise<number> {
	return new Promise((resolve, reject) => {
		const server = createServer();
		server.once("error", reject);
		server.listen(0, "127.0.0.1", () => {
			const address = server.address();
			const port = typeof address === "object" && address ? address.port : 0;
			server.close(() => resolve(port));
		});
	});
}

/** The V8 flags `npm start` and the image start a node with (docs/operations.md). */
export const GATEWAY_NODE_FLAGS = ["--max-semi-space-size=64"];

export function spawnGateway(name: string, env: Record<string, string>): GatewayProcess {
	// BENCH_PROFILE=<dir> writes a V8 CPU profile of each node (as test/bench/support/bench.ts does).
	const profile = process.env.BENCH_PROFILE ? ["--cpu-prof", `--cpu-prof-dir=${process.env.BENCH_PROFILE}`] : [];
	const child = spawn(process.execPath, [...GATEWAY_NODE_FLAGS, ...profile, "--import", "tsx", join(ROOT, "bin", "gateway.ts")], {
		cwd: ROOT,
		// The thread pool's size, like the flags above, as `npm start` and the image set it (docs/operations.md).
		env: { PATH: process.env.PATH ?? "", HOME: process.env.HOME ?? "", LOG_LEVEL: "info", UV_THREADPOOL_SIZE: "8", ...env },
		stdio: ["ignore", "pipe", "pipe"],
	});
	let log = "";
	const waiters: Array<() => void> = [];
	const onData = (chunk: Buffer) => {
		log += chunk.toString();
		for (const check of waiters.splice(0)) check();
	};
	child.stdout!.on("data", onData);
	child.stderr!.on("data", onData);
	const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
		child.once("exit", (code, signal) => {
			for (const check of waiters.splice(0)) check();
			resolve({ code, signal });
		});
	});
	return {
		name,
		child,
		output: () => log,
		exited,
		waitForOutput(pattern, timeoutMs = 30_000) {
			return new Promise((resolve, reject) => {
				const timer = setTimeout(() => reject(new Error(`${name}: no ${pattern} within ${timeoutMs} ms. Output:\n${log}`)), timeoutMs);
				const check = () => {
					if (pattern.test(log)) {
						clearTimeout(timer);
						resolve();
					} else if (child.exitCode !== null || child.signalCode !== null) {
						clearTimeout(timer);
						reject(new Error(`${name} exited (${child.exitCode ?? child.signalCode}) before ${pattern}. Output:\n${log}`));
					} else waiters.push(check);
				};
				check();
			});
		},
		kill(signal = "SIGTERM") {
			child.kill(signal);
		},
	};
}
