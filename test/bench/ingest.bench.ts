/**
 * Webhook ingest, sustained: 20,000 Telegram updates, 64 concurrent, each stored and emitted,
 * embedded (one process, SQLite) and as a cluster (api node + two workers on NATS, MariaDB,
 * Redis), each as a ratio to a bare moleculer-web echo route (a POST of the same JSON body)
 * measured in the same run. Goals: ratio >= 0.5 embedded and >= 0.3 cluster; > 5,000 updates/s
 * embedded.
 *   node --import tsx test/bench/ingest.bench.ts [--skip-cluster]
 */
import { rmSync } from "node:fs";
import { QueryTypes } from "sequelize";
import { openDatabase } from "../../lib/db/connection";
import { TelegramDouble } from "../support/telegram-double";
import { startCluster } from "../cluster/support/cluster";
import { tempDir } from "../support/harness";
import { freePort } from "../support/processes";
import { load, report, startEcho, startGateway, type Figure, type LoadResult } from "./support/bench";

const UPDATES = 20_000;
const CONNECTIONS = 64;
const ADMIN_PASSWORD = "bench-admin-password";

function updateBody(updateId: number): string {
	const chat = 10_000 + (updateId % 200);
	return JSON.stringify({
		update_id: updateId,
		message: {
			message_id: updateId,
			date: 1_700_000_000 + updateId,
			chat: { id: chat, type: "private", first_name: "User", last_name: `${chat}`, username: `user${chat}` },
			from: { id: chat, is_bot: false, first_name: "User", last_name: `${chat}`, username: `user${chat}`, language_code: "en" },
			text: `Hello from ${chat}, message ${updateId}: how are you today?`,
			entities: [{ type: "bold", offset: 0, length: 5 }],
		},
	});
}

/** Registers a bot through REST (webhook mode) and returns where and how to push its updates. */
async function registerBot(base: string, telegram: TelegramDouble): Promise<{ url: string; secret: string }> {
	const login = (await (
		await fetch(`${base}/api/v1/auth/login`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ username: "admin", password: ADMIN_PASSWORD }) })
	).json()) as { access_token: string };
	const token = telegram.addBot();
	const res = await fetch(`${base}/api/v1/bots`, {
		method: "POST",
		headers: { "content-type": "application/json", authorization: `Bearer ${login.access_token}` },
		body: JSON.stringify({ token }),
	});
	const bot = (await res.json()) as { webhook_url: string };
	if (res.status !== 201) throw new Error(`bot registration: ${res.status} ${JSON.stringify(bot)}`);
	return { url: `${base}/api/v1/telegram/webhook/${bot.webhook_url.split("/").pop()}`, secret: telegram.bot(token).webhook!.secret_token! };
}

async function pushUpdates(name: string, target: { url: string; secret: string }, firstId: number, amount: number): Promise<LoadResult> {
	let next = firstId;
	return load({
		name,
		url: target.url,
		method: "POST",
		headers: { "content-type": "application/json", "x-telegram-bot-api-secret-token": target.secret },
		requests: [{ method: "POST", setupRequest: (req) => ({ ...req, body: updateBody(next++) }) }],
		connections: CONNECTIONS,
		amount,
	});
}

async function echoRun(port: number): Promise<LoadResult> {
	let next = 1;
	return load({
		name: "echo",
		url: `http://127.0.0.1:${port}/echo`,
		method: "POST",
		headers: { "content-type": "application/json" },
		requests: [{ method: "POST", setupRequest: (req) => ({ ...req, body: updateBody(next++) }) }],
		connections: CONNECTIONS,
		amount: UPDATES,
	});
}

function check(run: LoadResult): void {
	if (run.non2xx > 0 || run.errors > 0) throw new Error(`${run.name}: ${run.non2xx} non-2xx answers, ${run.errors} errors`);
}

async function main(): Promise<void> {
	const skipCluster = process.argv.includes("--skip-cluster");
	const telegram = new TelegramDouble();
	const root = await telegram.start();
	const echo = await startEcho();
	const figures: Figure[] = [];
	const notes: string[] = [];
	try {
		await echoRun(echo.port); // warm-up
		const echoBefore = await echoRun(echo.port);

		// Embedded: every service in one process on SQLite.
		const port = await freePort();
		// Its database is counted after it stops, then removed.
		const dataDir = tempDir("tgw-bench-");
		const embedded = await startGateway({ ADMIN_PASSWORD, TELEGRAM_API_ROOT: root, PORT: String(port), PUBLIC_URL: `http://127.0.0.1:${port}`, DATA_DIR: dataDir });
		let embeddedRun: LoadResult;
		try {
			const target = await registerBot(`http://127.0.0.1:${embedded.port}`, telegram);
			await pushUpdates("warm-up", target, 1, 2_000);
			embeddedRun = await pushUpdates("embedded", target, 100_000, UPDATES);
			check(embeddedRun);
		} finally {
			await embedded.stop();
		}
		const db = await openDatabase(`sqlite:${dataDir}/gateway.sqlite`);
		const [stored] = await db.sequelize.query<{ n: number }>("SELECT COUNT(*) AS n FROM telegram_updates WHERE update_id >= 100000", { type: QueryTypes.SELECT });
		const [events] = await db.sequelize.query<{ n: number }>("SELECT COUNT(*) AS n FROM events", { type: QueryTypes.SELECT });
		await db.close();
		rmSync(dataDir, { recursive: true, force: true });
		if (Number(stored!.n) !== UPDATES) throw new Error(`embedded: ${stored!.n} of ${UPDATES} updates stored`);
		notes.push(`Embedded: ${stored!.n} of ${UPDATES} updates stored; ${events!.n} events in the log (warm-up included).`);

		const echoAfter = await echoRun(echo.port);
		const baseline = { name: "bare moleculer-web echo, POST of the same body", value: (echoBefore.requestsPerSecond + echoAfter.requestsPerSecond) / 2 };
		const embeddedRatio = embeddedRun.requestsPerSecond / baseline.value;
		figures.push(
			{ name: "embedded ingest", value: embeddedRun.requestsPerSecond, unit: "updates/s", baseline, ratio: embeddedRatio, goal: ">= 0.5", met: embeddedRatio >= 0.5 },
			{ name: "embedded ingest, absolute", value: embeddedRun.requestsPerSecond, unit: "updates/s", goal: "> 5000", met: embeddedRun.requestsPerSecond > 5_000 },
			{ name: "embedded p50 / p99 latency", value: embeddedRun.p50Ms, unit: `ms / ${embeddedRun.p99Ms} ms` },
			{ name: "echo p50 / p99 latency", value: echoBefore.p50Ms, unit: `ms / ${echoBefore.p99Ms} ms` },
		);

		if (!skipCluster) {
			const cluster = await startCluster(
				[
					{ name: "bench-api", services: ["api", "auth", "realtime"] },
					{ name: "bench-worker-1", services: ["auth", "bots", "chats", "ingest", "broker", "delivery"] },
					{ name: "bench-worker-2", services: ["auth", "bots", "chats", "ingest", "broker", "delivery"] },
				],
				{ TELEGRAM_API_ROOT: root, ADMIN_PASSWORD, PUBLIC_URL: "http://127.0.0.1:1", RATE_LIMIT_DEFAULT: "1000000" },
			);
			try {
				const target = await registerBot(cluster.node("bench-api").baseUrl, telegram);
				await pushUpdates("warm-up", target, 1, 2_000);
				const clusterRun = await pushUpdates("cluster", target, 100_000, UPDATES);
				check(clusterRun);
				const clusterDb = await openDatabase(cluster.databaseUrl);
				const [row] = await clusterDb.sequelize.query<{ n: number }>("SELECT COUNT(*) AS n FROM telegram_updates WHERE update_id >= 100000", { type: QueryTypes.SELECT });
				await clusterDb.close();
				if (Number(row!.n) !== UPDATES) throw new Error(`cluster: ${row!.n} of ${UPDATES} updates stored`);
				const echoCluster = await echoRun(echo.port);
				const clusterBaseline = { name: "bare moleculer-web echo, same run", value: (baseline.value + echoCluster.requestsPerSecond) / 2 };
				const ratio = clusterRun.requestsPerSecond / clusterBaseline.value;
				figures.push(
					{ name: "cluster ingest (api + 2 workers, NATS, MariaDB, Redis)", value: clusterRun.requestsPerSecond, unit: "updates/s", baseline: clusterBaseline, ratio, goal: ">= 0.3", met: ratio >= 0.3 },
					{ name: "cluster p50 / p99 latency", value: clusterRun.p50Ms, unit: `ms / ${clusterRun.p99Ms} ms` },
				);
				notes.push(`Cluster: ${row!.n} of ${UPDATES} updates stored.`);
			} finally {
				await cluster.stop();
			}
		}
		report("Webhook ingest", figures, [
			`${UPDATES} updates per run, ${CONNECTIONS} connections, 200 distinct chats, ~450-byte text messages; autocannon in the benchmark process.`,
			...notes,
		]);
	} finally {
		await echo.stop();
		await telegram.stop();
	}
}

main().catch((err: unknown) => {
	console.error(err);
	process.exit(1);
});
