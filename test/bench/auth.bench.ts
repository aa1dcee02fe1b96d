/**
 * Authenticated GET throughput (GET /api/v1/auth/me) with an API key and with a JWT, each as a
 * ratio to a bare moleculer-web echo route measured in the same run. Goal: at least 0.7 for both.
 *   node --import tsx test/bench/auth.bench.ts
 */
import { load, report, startEcho, startGateway, type Figure } from "./support/bench";

const ADMIN_PASSWORD = "bench-admin-password";

async function main(): Promise<void> {
	const echo = await startEcho();
	// The per-principal rate limit stays on (its bucket is charged on every request) but high enough not to refuse.
	const gateway = await startGateway({ ADMIN_PASSWORD, RATE_LIMIT_DEFAULT: "10000000" });
	try {
		const base = `http://127.0.0.1:${gateway.port}/api/v1`;
		const login = (await (
			await fetch(`${base}/auth/login`, {
				method: "POST",
				headers: { "content-type": "application/json" },
				body: JSON.stringify({ username: "admin", password: ADMIN_PASSWORD }),
			})
		).json()) as { access_token: string };
		const created = (await (
			await fetch(`${base}/apikeys`, {
				method: "POST",
				headers: { "content-type": "application/json", authorization: `Bearer ${login.access_token}` },
				body: JSON.stringify({ name: "bench", rate_limit: 100000 }),
			})
		).json()) as { key: string };

		const echoUrl = `http://127.0.0.1:${echo.port}/echo`;
		await load({ name: "warm-up echo", url: echoUrl, durationSeconds: 2 });
		await load({ name: "warm-up gateway", url: `${base}/auth/me`, headers: { "x-api-key": created.key }, durationSeconds: 2 });

		const echo1 = await load({ name: "echo", url: echoUrl });
		const apiKey = await load({ name: "GET /auth/me with X-API-Key", url: `${base}/auth/me`, headers: { "x-api-key": created.key } });
		const jwt = await load({ name: "GET /auth/me with Bearer JWT", url: `${base}/auth/me`, headers: { authorization: `Bearer ${login.access_token}` } });
		const echo2 = await load({ name: "echo", url: echoUrl });
		const baseline = { name: "bare moleculer-web echo (mean of before and after)", value: (echo1.requestsPerSecond + echo2.requestsPerSecond) / 2 };

		const figures: Figure[] = [];
		for (const run of [apiKey, jwt]) {
			if (run.non2xx > 0 || run.errors > 0) throw new Error(`${run.name}: ${run.non2xx} non-2xx, ${run.errors} errors`);
			const ratio = run.requestsPerSecond / baseline.value;
			figures.push({ name: run.name, value: run.requestsPerSecond, unit: "req/s", baseline, ratio, goal: ">= 0.7", met: ratio >= 0.7 });
			figures.push({ name: `${run.name}: p50 / p99 latency`, value: run.p50Ms, unit: `ms / ${run.p99Ms} ms` });
		}
		figures.push({ name: "echo p50 / p99 latency", value: echo1.p50Ms, unit: `ms / ${echo1.p99Ms} ms` });
		report("Authenticated GET throughput", figures, [
			`64 connections, 8 s per run, autocannon in the benchmark process, each server in a process of its own. Echo runs: ${echo1.requestsPerSecond.toFixed(0)} and ${echo2.requestsPerSecond.toFixed(0)} req/s.`,
		]);
	} finally {
		await Promise.all([gateway.stop(), echo.stop()]);
	}
}

main().catch((err: unknown) => {
	console.error(err);
	process.exit(1);
});
