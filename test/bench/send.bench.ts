/**
 * Sending through the gateway: messages/s from POST /chats/:id/messages to Telegram's acceptance, for
 * many bots at once (100 bots x 30 private chats, one message per chat: inside every flood limit, so
 * the figure is the gateway's own). Baseline, in the same run: the same 3,000 sendMessage calls made
 * straight to the Telegram double by a bare client with the same concurrency.
 *   node --import tsx test/bench/send.bench.ts [--bots 100] [--chats 30]
 */
import { parseArgs } from "node:util";
import { Agent } from "undici";
import { TelegramDouble } from "../support/telegram-double";
import { freePort } from "../support/processes";
import { percentile, report, startGateway, until, type Figure } from "./support/bench";

const ADMIN_PASSWORD = "bench-admin-password";
/** Requests in flight at once, from the benchmark's client to the gateway (or to the double). */
const CONCURRENCY = Number(process.env.SEND_BENCH_CONCURRENCY ?? 64);

const { values } = parseArgs({ options: { bots: { type: "string" }, chats: { type: "string" } } });
const BOTS = Number(values.bots ?? 100);
const CHATS_PER_BOT = Number(values.chats ?? 30);

interface Target {
	token: string;
	botId: number;
	chatTelegramId: number;
	chatId: number;
}

async function json<T>(res: Response): Promise<T> {
	if (!res.ok) throw new Error(`${res.url} answered ${res.status}: ${await res.text()}`);
	return (await res.json()) as T;
}

/** Runs `work` for every item, `concurrency` at a time. */
async function pool<T>(items: T[], concurrency: number, work: (item: T) => Promise<void>): Promise<void> {
	let next = 0;
	await Promise.all(
		Array.from({ length: Math.min(concurrency, items.length) }, async () => {
			while (next < items.length) await work(items[next++]!);
		}),
	);
}

/** The bare client: each target's sendMessage straight to the double. Returns messages/s. */
async function direct(root: string, targets: Target[]): Promise<number> {
	const dispatcher = new Agent({ connections: CONCURRENCY });
	const started = performance.now();
	await pool(targets, CONCURRENCY, async (t) => {
		const res = await fetch(`${root}/bot${t.token}/sendMessage`, {
			method: "POST",
			headers: { "content-type": "application/json" },
			body: JSON.stringify({ chat_id: t.chatTelegramId, text: `direct to ${t.chatTelegramId}` }),
			// @ts-expect-error undici's dispatcher option, not in the DOM fetch types
			dispatcher,
		});
		const body = (await res.json()) as { ok: boolean; description?: string };
		if (!body.ok) throw new Error(`direct sendMessage refused: ${body.description}`);
	});
	const rate = targets.length / ((performance.now() - started) / 1000);
	await dispatcher.close();
	return rate;
}

async function main(): Promise<void> {
	const telegram = new TelegramDouble();
	const root = await telegram.start();
	const port = await freePort();
	const gateway = await startGateway({ ADMIN_PASSWORD, TELEGRAM_API_ROOT: root, PORT: String(port), PUBLIC_URL: `http://127.0.0.1:${port}`, RATE_LIMIT_DEFAULT: "100000" });
	const base = `http://127.0.0.1:${port}`;
	const figures: Figure[] = [];
	try {
		const { access_token } = await json<{ access_token: string }>(
			await fetch(`${base}/api/v1/auth/login`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ username: "admin", password: ADMIN_PASSWORD }) }),
		);
		const headers = { authorization: `Bearer ${access_token}`, "content-type": "application/json" };

		// Bots, and users writing to them: the gateway learns each chat from its update.
		const bots: Array<{ token: string; botId: number }> = [];
		await pool(
			Array.from({ length: BOTS }, () => telegram.addBot()),
			8,
			async (token) => {
				const bot = await json<{ id: number }>(await fetch(`${base}/api/v1/bots`, { method: "POST", headers, body: JSON.stringify({ token }) }));
				bots.push({ token, botId: bot.id });
			},
		);
		// Bot after bot, round after round: the load is spread over every bot, as many clients' would be
		// (each bot's own limit is 30 messages/s).
		let chatTelegramId = 5_000_000;
		const wanted: Array<{ token: string; botId: number; chatTelegramId: number }> = [];
		for (let c = 0; c < CHATS_PER_BOT; c++) {
			for (const bot of bots) {
				const id = chatTelegramId++;
				telegram.userSends(bot.token, { chat_id: id, text: "hello", chat: { type: "private", first_name: "U" } });
				wanted.push({ ...bot, chatTelegramId: id });
			}
		}
		const chatIds = new Map<string, number>();
		const listChats = async () => {
			chatIds.clear();
			let cursor: string | null = null;
			do {
				const page: { data: Array<{ id: number; bot_id: number; telegram_id: number }>; next_cursor: string | null } = await json(
					await fetch(`${base}/api/v1/chats?limit=200${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ""}`, { headers }),
				);
				for (const chat of page.data) chatIds.set(`${chat.bot_id}|${chat.telegram_id}`, chat.id);
				cursor = page.next_cursor;
			} while (cursor);
			return chatIds.size >= wanted.length;
		};
		if (!(await until(listChats, 120_000, 20))) throw new Error(`only ${chatIds.size} of ${wanted.length} chats arrived`);
		const targets: Target[] = wanted.map((w) => ({ ...w, chatId: chatIds.get(`${w.botId}|${w.chatTelegramId}`)! }));

		// The baseline first, then a second later the same chats through the gateway (1/s per chat).
		const directRate = await direct(root, targets);
		await new Promise((r) => setTimeout(r, 1_100));

		const sendsBefore = telegram.calls.sendMessage ?? 0;
		const statuses: Record<number, number> = {};
		const latencies: number[] = [];
		const started = performance.now();
		await pool(targets, CONCURRENCY, async (t) => {
			const at = performance.now();
			const res = await fetch(`${base}/api/v1/chats/${t.chatId}/messages`, { method: "POST", headers, body: JSON.stringify({ text: `through the gateway to ${t.chatTelegramId}` }) });
			await res.arrayBuffer();
			statuses[res.status] = (statuses[res.status] ?? 0) + 1;
			latencies.push(performance.now() - at);
		});
		const allSent = await until(() => (telegram.calls.sendMessage ?? 0) - sendsBefore >= targets.length, 120_000, 20);
		const elapsed = (performance.now() - started) / 1000;
		const sent = (telegram.calls.sendMessage ?? 0) - sendsBefore;
		const rate = sent / elapsed;
		if (!allSent) throw new Error(`only ${sent} of ${targets.length} messages reached the double in 120 s (statuses ${JSON.stringify(statuses)})`);
		if (telegram.floodRefusals.length > 0) throw new Error(`the gateway broke a flood limit ${telegram.floodRefusals.length} time(s)`);

		figures.push({
			name: `messages/s sent, ${BOTS} bots x ${CHATS_PER_BOT} private chats, 1 message each, ${CONCURRENCY} requests at once`,
			value: rate,
			unit: "messages/s",
			baseline: { name: "the same sendMessage calls straight to the double", value: directRate },
			ratio: rate / directRate,
		});
		figures.push({ name: "POST /chats/:id/messages p50 / p99 (answer 201 once Telegram took it, 202 if still queued at 5 s)", value: percentile(latencies, 50), unit: `ms / ${percentile(latencies, 99).toFixed(0)} ms` });
		report("Sending", figures, [`Embedded gateway (one node, SQLite); the Telegram double and the client in the benchmark process. Answers: ${JSON.stringify(statuses)}.`]);
	} finally {
		await gateway.stop();
		await telegram.stop();
	}
}

main().catch((err: unknown) => {
	console.error(err);
	process.exit(1);
});
