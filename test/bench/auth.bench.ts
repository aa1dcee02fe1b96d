/**
 * Authenticated GET throughput (GET /api/v1/auth/me) with an API key and with a JWT, each as a
 * ratio to a bare moleculer-web echo route measured in the same run, in alternating rounds (the
 * median round is reported, every round's ratio next to it). Goal: at least 0.7 for both.
 * Beside them, a calibration: the same echo doing 5, 10 and 20 us of CPU work per request, so the
 * ratios read as server time: "the gateway costs about what an echo with N us more work costs".
 *   node --import tsx test/bench/auth.bench.ts
 */
import { load, report, startEcho, startGateway, type Figure, type LoadResult } from "./support/bench";

const ADMIN_PASSWORD = "bench-admin-password";
const ROUNDS = 3;
const ROUND_SECONDS = 6;
/** Microseconds of CPU work per request added to the echo for the calibration runs. */
const CALIBRATION_US = [5, 10, 20];

/**
 * The added work (us per request) at which the calibration curve, from (0 us, ratio 1) through the
 * measured points, reaches `ratio` (linear between points); past its last point, that point, `beyond`.
 */
function equivalentWork(points: Array<{ us: number; ratio: number }>, ratio: number): { us: number; beyond: boolean } {
	const curve = [{ us: 0, ratio: 1 }, ...points];
	for (let i = 1; i < curve.length; i++) {
		const [a, b] = [curve[i - 1]!, curve[i]!];
		if (ratio >= b.ratio && a.ratio > b.ratio) return { us: a.us + ((a.ratio - Math.min(ratio, a.ratio)) / (a.ratio - b.ratio)) * (b.us - a.us), beyond: false };
	}
	return { us: curve[curve.length - 1]!.us, beyond: true };
}

function median(values: number[]): number {
	return [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!;
}

async function main(): Promise<void> {
	const echo = await startEcho();
	const calibration = await Promise.all(CALIBRATION_US.map((us) => startEcho(us)));
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
		const runs = {
			echo: () => load({ name: "echo", url: echoUrl, durationSeconds: ROUND_SECONDS }),
			apiKey: () => load({ name: "GET /auth/me with X-API-Key", url: `${base}/auth/me`, headers: { "x-api-key": created.key }, durationSeconds: ROUND_SECONDS }),
			jwt: () => load({ name: "GET /auth/me with Bearer JWT", url: `${base}/auth/me`, headers: { authorization: `Bearer ${login.access_token}` }, durationSeconds: ROUND_SECONDS }),
		};
		await load({ name: "warm-up echo", url: echoUrl, durationSeconds: 2 });
		await load({ name: "warm-up gateway", url: `${base}/auth/me`, headers: { "x-api-key": created.key }, durationSeconds: 2 });

		// The host's speed drifts by tens of percent within a minute: rounds of echo, key, JWT, each
		// gateway run divided by the echo runs just before and after it, and the median round reported.
		const echoes = [await runs.echo()];
		const rounds: Array<{ apiKey: LoadResult; jwt: LoadResult }> = [];
		for (let i = 0; i < ROUNDS; i++) {
			rounds.push({ apiKey: await runs.apiKey(), jwt: await runs.jwt() });
			echoes.push(await runs.echo());
		}
		// The calibration between two more echo runs (the host drifts): each echo-plus-work over their mean.
		const calibrated: LoadResult[] = [];
		for (const [i, server] of calibration.entries()) {
			calibrated.push(await load({ name: `echo + ${CALIBRATION_US[i]} us`, url: `http://127.0.0.1:${server.port}/echo`, durationSeconds: ROUND_SECONDS }));
		}
		echoes.push(await runs.echo());
		for (const run of [...rounds.flatMap((r) => [r.apiKey, r.jwt]), ...calibrated]) {
			if (run.non2xx > 0 || run.errors > 0) throw new Error(`${run.name}: ${run.non2xx} non-2xx, ${run.errors} errors`);
		}
		const echoAround = (i: number) => (echoes[i]!.requestsPerSecond + echoes[i + 1]!.requestsPerSecond) / 2;

		const figures: Figure[] = [];
		for (const kind of ["apiKey", "jwt"] as const) {
			const ratios = rounds.map((r, i) => r[kind].requestsPerSecond / echoAround(i));
			const middle = ratios.indexOf(median(ratios));
			const run = rounds[middle]![kind];
			const baseline = { name: "bare moleculer-web echo (mean of the runs before and after)", value: echoAround(middle) };
			figures.push({ name: `${run.name} (median of ${ROUNDS} rounds)`, value: run.requestsPerSecond, unit: "req/s", baseline, ratio: ratios[middle], goal: ">= 0.7", met: ratios[middle]! >= 0.7 });
			figures.push({ name: `${run.name}: ratio in each round`, value: Math.min(...ratios), unit: `.. ${Math.max(...ratios).toFixed(2)} (${ratios.map((r) => r.toFixed(2)).join(", ")})` });
			figures.push({ name: `${run.name}: p50 / p99 latency`, value: run.p50Ms, unit: `ms / ${run.p99Ms} ms` });
		}
		figures.push({ name: "echo p50 / p99 latency", value: echoes[0]!.p50Ms, unit: `ms / ${echoes[0]!.p99Ms} ms` });
		const calibrationBase = (echoes[ROUNDS]!.requestsPerSecond + echoes[ROUNDS + 1]!.requestsPerSecond) / 2;
		const points = calibrated.map((run, i) => ({ us: CALIBRATION_US[i]!, ratio: run.requestsPerSecond / calibrationBase }));
		for (const [i, point] of points.entries()) {
			figures.push({ name: `calibration: echo doing ${point.us} us more CPU work per request`, value: calibrated[i]!.requestsPerSecond, unit: "req/s", baseline: { name: "echo (the runs before and after)", value: calibrationBase }, ratio: point.ratio });
		}
		for (const kind of ["apiKey", "jwt"] as const) {
			const ratio = figures.find((f) => f.name.startsWith(rounds[0]![kind].name) && f.ratio !== undefined)!.ratio!;
			const work = equivalentWork(points, ratio);
			figures.push({ name: `${rounds[0]![kind].name}: runs as fast as an echo doing this much more CPU work per request`, value: work.us, unit: work.beyond ? "us or more" : "us" });
		}
		report("Authenticated GET throughput", figures, [
			`64 connections, ${ROUNDS} rounds of ${ROUND_SECONDS} s runs (echo, X-API-Key, JWT, then echo again), then the calibration runs (the echo doing ${CALIBRATION_US.join(", ")} us of busy work in its action) and echo once more; autocannon in the benchmark process, each server in a process of its own. Echo runs: ${echoes.map((e) => e.requestsPerSecond.toFixed(0)).join(", ")} req/s.`,
			"The calibration says what a ratio costs on this host: every microsecond a request keeps the server busy lowers throughput, and more than the microsecond itself (the client, idle more often, is woken for each answer: the server's writev takes longer).",
		]);
	} finally {
		await Promise.all([gateway.stop(), echo.stop(), ...calibration.map((server) => server.stop())]);
	}
}

main().catch((err: unknown) => {
	console.error(err);
	process.exit(1);
});
