/**
 * Live fan-out on one node (the embedded gateway):
 * The sockets speak socket.io's wire protocol through a minimal client (support/socketio-lite.ts).
 * 1. Latency from Telegram's POST to receipt, p50 and p99, with 1,000 socket.io subscribers (one
 *    per chat, the updates spread over their 1,000 chats) and one gRPC stream of everything, at
 *    1,000 updates/s, after a 2 s warm-up at that rate. Goal: p99 under 25 ms. Beside it, when the
 *    POST was answered (after the commit): the part of the latency that is ingest's, not fan-out's.
 * 2. 10,000 idle socket.io connections: the server's memory per connection (goal under 30 KB) and
 *    the time to push one event to all of them (all subscribed to the same chat).
 *   node --import tsx test/bench/realtime.bench.ts
 */
import { join } from "node:path";
import { readFileSync } from "node:fs";
import { monitorEventLoopDelay } from "node:perf_hooks";
import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";
import { Pool } from "undici";
import { LiteSocket } from "./support/socketio-lite";
import { TelegramDouble } from "../support/telegram-double";
import { freePort } from "../support/processes";
import { percentile, report, startGateway, type Figure } from "./support/bench";

const ADMIN_PASSWORD = "bench-admin-password";

function rssKb(pid: number): number {
	const status = readFileSync(`/proc/${pid}/status`, "utf8");
	return Number(/VmRSS:\s+(\d+) kB/.exec(status)![1]);
}

const connect = (base: string, token: string) => LiteSocket.connect(base, token);

async function inBatches<T>(count: number, size: number, make: (i: number) => Promise<T>): Promise<T[]> {
	const out: T[] = [];
	for (let i = 0; i < count; i += size) out.push(...(await Promise.all(Array.from({ length: Math.min(size, count - i) }, (_, j) => make(i + j)))));
	return out;
}

interface Gateway {
	base: string;
	grpcPort: number;
	token: string;
	pid: number;
	push(chat: number): Promise<unknown>;
	sentAt: Map<number, number>;
	/** When each push's answer came: Telegram's 2xx follows the commit of the update. */
	answeredAt: Map<number, number>;
	chatIds: number[];
	stop(): Promise<void>;
}

/** A fresh embedded gateway with a bot whose `chats` chats exist already. */
async function gatewayWithChats(telegram: TelegramDouble, root: string, chats: number): Promise<Gateway> {
	const port = await freePort();
	const grpcPort = await freePort();
	const gateway = await startGateway({
		ADMIN_PASSWORD,
		TELEGRAM_API_ROOT: root,
		PORT: String(port),
		GRPC_PORT: String(grpcPort),
		PUBLIC_URL: `http://127.0.0.1:${port}`,
		RATE_LIMIT_DEFAULT: "1000000",
		// Every socket here is the admin's: 10,000 of them are over the default cap per principal.
		LIVE_CONNECTIONS_PER_PRINCIPAL: "20000",
		...(process.env.BENCH_GATEWAY_NODE_OPTIONS ? { NODE_OPTIONS: process.env.BENCH_GATEWAY_NODE_OPTIONS } : {}),
	});
	const base = `http://127.0.0.1:${port}`;
	const login = (await (
		await fetch(`${base}/api/v1/auth/login`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ username: "admin", password: ADMIN_PASSWORD }) })
	).json()) as { access_token: string };
	const headers = { authorization: `Bearer ${login.access_token}`, "content-type": "application/json" };
	const botToken = telegram.addBot();
	const bot = (await (await fetch(`${base}/api/v1/bots`, { method: "POST", headers, body: JSON.stringify({ token: botToken }) })).json()) as { webhook_url: string };
	const path = bot.webhook_url.split("/").pop()!;
	const secret = telegram.bot(botToken).webhook!.secret_token!;
	let updateId = 1;
	const sentAt = new Map<number, number>();
	const answeredAt = new Map<number, number>();
	// undici's Pool rather than fetch: fetch's web streams and abort signals cost this process, which
	// also takes every receipt time, enough garbage to show in the latencies it measures.
	const pushes = new Pool(base, { connections: 64, pipelining: 1 });
	const pushHeaders = { "content-type": "application/json", "x-telegram-bot-api-secret-token": secret };
	const push = (chat: number) => {
		const id = updateId++;
		sentAt.set(id, performance.now());
		const send = () =>
			pushes
				.request({
					method: "POST",
					path: `/api/v1/telegram/webhook/${path}`,
					headers: pushHeaders,
					body: JSON.stringify({ update_id: id, message: { message_id: id, date: 1_700_000_000, chat: { id: chat, type: "private", first_name: "U" }, text: `u${id}` } }),
				})
				.then((r) => {
					answeredAt.set(id, performance.now());
					return r.body.dump();
				});
		// A keep-alive connection the server just closed resets the next request on it: send again,
		// as Telegram would (the update_id makes it idempotent).
		return send().catch(send);
	};
	await inBatches(chats, 50, (i) => push(50_000 + i));
	const chatIds: number[] = [];
	for (let cursor: string | null = null; ; ) {
		const page = (await (await fetch(`${base}/api/v1/chats?limit=200${cursor ? `&cursor=${cursor}` : ""}`, { headers })).json()) as { data: Array<{ id: number }>; next_cursor: string | null };
		chatIds.push(...page.data.map((c) => c.id));
		if (!page.next_cursor) break;
		cursor = page.next_cursor;
	}
	const stop = async () => {
		await pushes.close();
		await gateway.stop();
	};
	return { base, grpcPort, token: login.access_token, pid: gateway.child.pid!, push, sentAt, answeredAt, chatIds, stop };
}

const WARM_UP_SECONDS = 2;
const SECONDS = 10;

/** Sends `count` pushes at `rate` per second, waits for every answer, and returns the rate achieved. */
async function pushAt(rate: number, count: number, push: (i: number) => Promise<unknown>): Promise<number> {
	const started = performance.now();
	const inflight: Promise<unknown>[] = [];
	for (let i = 0; i < count; i++) {
		const wait = started + (i * 1000) / rate - performance.now();
		if (wait > 1) await new Promise((r) => setTimeout(r, wait));
		inflight.push(push(i));
	}
	await Promise.all(inflight);
	return count / ((performance.now() - started) / 1000);
}

async function latencyPhase(telegram: TelegramDouble, root: string, rate: number): Promise<Figure[]> {
	const CHATS = 1_000;
	const gw = await gatewayWithChats(telegram, root, CHATS);
	const sockets: LiteSocket[] = [];
	try {
		const latencies: number[] = [];
		const grpcLatencies: number[] = [];
		const measured = new Set<number>();
		const receive = (target: number[]) => (payload: unknown) => {
			const event = payload as { message?: { text?: string } };
			const id = Number(event.message?.text?.slice(1));
			const at = gw.sentAt.get(id);
			if (at === undefined) return;
			target.push(performance.now() - at);
			measured.add(id);
		};
		sockets.push(
			...(await inBatches(CHATS, 100, async (i) => {
				const socket = await connect(gw.base, gw.token);
				await socket.emitWithAck("subscribe", { chat_id: gw.chatIds[i] });
				socket.on("new_message", receive(latencies));
				return socket;
			})),
		);
		const definition = protoLoader.loadSync(join(__dirname, "..", "..", "proto", "gateway.proto"), { keepCase: true, longs: Number, defaults: true, oneofs: true });
		const proto = grpc.loadPackageDefinition(definition) as unknown as { gateway: { v1: { MessageService: grpc.ServiceClientConstructor } } };
		const client = new proto.gateway.v1.MessageService(`127.0.0.1:${gw.grpcPort}`, grpc.credentials.createInsecure());
		const metadata = new grpc.Metadata();
		metadata.set("authorization", `Bearer ${gw.token}`);
		const stream = client.StreamMessages({}, metadata) as grpc.ClientReadableStream<{ message?: { text?: string } }>;
		stream.on("data", receive(grpcLatencies));
		stream.on("error", () => undefined);
		await new Promise((r) => setTimeout(r, 500));

		// Warm-up at the same rate, not measured: a fresh gateway's first second is its JIT compiling
		// the ingest and fan-out paths (the other benchmarks warm up too).
		await pushAt(rate, rate * WARM_UP_SECONDS, (i) => gw.push(50_000 + (i % CHATS)));
		await new Promise((r) => setTimeout(r, 1_000));
		latencies.length = 0;
		grpcLatencies.length = 0;
		measured.clear();

		const total = rate * SECONDS;
		// The receipt time is taken in this process, which shares the 2 cores with the gateway: its
		// own event-loop delay is part of every latency measured here, so it is reported next to them.
		const loopDelay = monitorEventLoopDelay({ resolution: 5 });
		loopDelay.enable();
		const pushedRate = await pushAt(rate, total, (i) => gw.push(50_000 + (i % CHATS)));
		const deadline = Date.now() + 20_000;
		while ((latencies.length < total || grpcLatencies.length < total) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
		loopDelay.disable();
		stream.cancel();
		client.close();
		const label = `${rate} updates/s offered, ${pushedRate.toFixed(0)}/s pushed`;
		// Where the time goes: the push's answer follows the update's commit, the receipt its fan-out.
		const answered = [...measured].map((id) => gw.answeredAt.get(id)! - gw.sentAt.get(id)!);
		return [
			{ name: `socket.io receipt latency p50 (1,000 subscribers; ${label})`, value: percentile(latencies, 50), unit: "ms" },
			{ name: `socket.io receipt latency p99 (${rate}/s)`, value: percentile(latencies, 99), unit: "ms", goal: "< 25", met: percentile(latencies, 99) < 25 },
			{ name: `gRPC stream receipt latency p50 / p99 (${rate}/s)`, value: percentile(grpcLatencies, 50), unit: `ms / ${percentile(grpcLatencies, 99).toFixed(1)} ms` },
			{ name: `the Telegram POST answered (the update committed) p50 / p99 (${rate}/s)`, value: percentile(answered, 50), unit: `ms / ${percentile(answered, 99).toFixed(1)} ms` },
			{ name: `received by the sockets / by the gRPC stream (of ${total})`, value: latencies.length, unit: `/ ${grpcLatencies.length}` },
			{ name: `the benchmark process's own event-loop delay p50 / p99 (${rate}/s; included in the latencies above)`, value: loopDelay.percentile(50) / 1e6, unit: `ms / ${(loopDelay.percentile(99) / 1e6).toFixed(1)} ms` },
		];
	} finally {
		for (const s of sockets) s.close();
		await gw.stop();
	}
}

async function idlePhase(telegram: TelegramDouble, root: string): Promise<Figure[]> {
	const IDLE = 10_000;
	const gw = await gatewayWithChats(telegram, root, 1);
	const sockets: LiteSocket[] = [];
	try {
		await new Promise((r) => setTimeout(r, 2_000));
		const rssBefore = rssKb(gw.pid);
		const received: number[] = [];
		let pushedAt = 0;
		sockets.push(
			...(await inBatches(IDLE, 200, async () => {
				const socket = await connect(gw.base, gw.token);
				await socket.emitWithAck("subscribe", { chat_id: gw.chatIds[0] });
				socket.on("new_message", () => received.push(performance.now() - pushedAt));
				return socket;
			})),
		);
		await new Promise((r) => setTimeout(r, 3_000));
		const perConnectionKb = (rssKb(gw.pid) - rssBefore) / IDLE;
		pushedAt = performance.now();
		await gw.push(50_000);
		const deadline = Date.now() + 30_000;
		while (received.length < IDLE && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
		return [
			{ name: "server memory per idle socket.io connection (RSS growth / 10,000)", value: perConnectionKb, unit: "KB", goal: "< 30", met: perConnectionKb < 30 },
			{ name: "one event to 10,000 sockets: until the last received it", value: Math.max(...received), unit: `ms (${received.length} received; median ${percentile(received, 50).toFixed(0)} ms)` },
		];
	} finally {
		for (const s of sockets) s.close();
		await gw.stop();
	}
}

async function main(): Promise<void> {
	const telegram = new TelegramDouble();
	const root = await telegram.start();
	try {
		const figures = [...(await latencyPhase(telegram, root, 1_000)), ...(await latencyPhase(telegram, root, 300)), ...(await idlePhase(telegram, root))];
		report("Live fan-out", figures, [
			"Embedded gateway, a fresh one per phase; the sockets (a minimal socket.io client), the gRPC client and the load all run in the benchmark process, on the other core. Latency = receipt minus the moment the Telegram POST was sent. Each latency phase first pushes 2 s at its rate, not measured (warm-up), then measures 10 s.",
		]);
	} finally {
		await telegram.stop();
	}
}

main().catch((err: unknown) => {
	console.error(err);
	process.exit(1);
});
