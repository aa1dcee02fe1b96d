/**
 * The fault suite's world: private stores, a five-node cluster on them, one webhook-mode bot with
 * three chats, three webhook endpoints, socket.io subscribers on both api nodes, a gRPC stream, the
 * Telegram pusher and the REST sender; plus the reads the figures are made of (the event log and
 * the stored updates, straight from the database).
 */
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Redis from "ioredis";
import mysql from "mysql2/promise";
import { setTimeout as sleep } from "node:timers/promises";
import type * as ClusterSupport from "../../cluster/support/cluster";
import type { Cluster, NodeSpec } from "../../cluster/support/cluster";
import { http } from "../../support/harness";
import type { GatewayProcess } from "../../support/processes";
import { startReceiver, type Receiver } from "../../support/receivers";
import { TelegramDouble } from "../../support/telegram-double";
import { GrpcChatConsumer, SocketConsumer, type EventTally } from "./consumers";
import { RestSender, TelegramPusher } from "./load";
import type { ConsumerFigures } from "./report";
import { startStores, type Stores } from "./stores";

const WORKER = ["auth", "bots", "chats", "ingest", "broker", "delivery"];
export const NODE_SPECS: NodeSpec[] = [
	{ name: "api-a", services: ["api", "auth", "realtime"] },
	{ name: "api-b", services: ["api", "auth", "realtime"] },
	{ name: "grpc-1", services: ["grpc", "auth"] },
	{ name: "worker-1", services: WORKER },
	{ name: "worker-2", services: WORKER },
];
const TELEGRAM_CHATS = [9_001, 9_002, 9_003];

export type SeqRange = [from: number, to: number];

/** A webhook endpoint and which of the bot's events it should get. */
interface Endpoint {
	name: string;
	receiver: Receiver;
	wants(event: { chat_id: number | null }): boolean;
}

export class FaultScene {
	stores!: Stores;
	cluster!: Cluster;
	readonly telegram = new TelegramDouble();
	token = "";
	botId = 0;
	/** Telegram chat id -> the gateway's chat id. */
	readonly chats = new Map<number, number>();
	endpoints: Endpoint[] = [];
	sockets: SocketConsumer[] = [];
	grpc: GrpcChatConsumer[] = [];
	pusher!: TelegramPusher;
	sender!: RestSender;
	startSeq = 0;
	/** Node processes that were killed (and replaced): their output is kept for the logs. */
	private readonly retired: GatewayProcess[] = [];

	async start(): Promise<void> {
		this.stores = await startStores();
		// cluster.ts reads these once, when it is loaded: hence loading it only now (nothing else here
		// imports it but for types).
		process.env.CLUSTER_MYSQL_URL = this.stores.mariadb.url;
		process.env.CLUSTER_NATS_URL = this.stores.nats.url;
		process.env.CLUSTER_REDIS_URL = this.stores.redis.url;
		const { startCluster, waitForRoute } = jest.requireActual<typeof ClusterSupport>("../../cluster/support/cluster");
		const root = await this.telegram.start();
		this.cluster = await startCluster(NODE_SPECS, { TELEGRAM_API_ROOT: root, PUBLIC_URL: "http://127.0.0.1:1", JWT_ACCESS_TTL: "3600", RATE_LIMIT_DEFAULT: "1000" });
		const [a, b] = this.apiUrls;
		for (const base of [a!, b!]) await waitForRoute(base, "/api/v1/bots");
		const login = await http<{ access_token: string }>(a!, "POST", "/api/v1/auth/login", { body: { username: "admin", password: "cluster-admin-password" } });
		this.token = login.body.access_token;

		const botToken = this.telegram.addBot();
		const bot = await this.api<{ id: number; webhook_url: string }>("POST", "/bots", { token: botToken });
		this.botId = bot.id;
		const target = { baseUrls: this.apiUrls, path: bot.webhook_url.split("/").pop()!, secret: this.telegram.bot(botToken).webhook!.secret_token!, chatIds: TELEGRAM_CHATS };
		// The first update of each chat creates it; the pusher then carries on from update 1,000.
		const opening = new TelegramPusher(target, 1);
		opening.startProducing(20);
		await sleep(200);
		opening.stopProducing();
		if (!(await opening.drain(30_000))) throw new Error("the opening updates were not accepted");
		await opening.close();
		const chats = await this.api<{ data: Array<{ id: number; telegram_id: number }> }>("GET", `/chats?bot_id=${bot.id}`);
		for (const chat of chats.data) this.chats.set(Number(chat.telegram_id), chat.id);
		const [chatA, chatB, chatC] = TELEGRAM_CHATS.map((id) => this.chats.get(id)!);
		if (!chatA || !chatB || !chatC) throw new Error(`chats missing: ${JSON.stringify(chats.data)}`);

		const endpoints: Array<[string, Record<string, unknown>, Endpoint["wants"]]> = [
			["all", { scope: "all" }, () => true],
			["bot", { scope: "bot", bot_id: bot.id }, () => true],
			["chats A+B", { scope: "chat", chat_ids: [chatA, chatB] }, (e) => e.chat_id === chatA || e.chat_id === chatB],
		];
		for (const [name, body, wants] of endpoints) {
			const receiver = await startReceiver();
			await this.api("POST", "/webhooks", { url: receiver.url, ...body });
			this.endpoints.push({ name: `webhook ${name}`, receiver, wants });
		}
		// Webhooks get the events stored after they were created (to the second): start after that.
		await sleep(1_100);
		this.startSeq = await this.headSeq();
		this.sockets = this.apiNames.map((name) => new SocketConsumer(`socket.io@${name}`, this.cluster.node(name).baseUrl, this.token, bot.id, this.startSeq));
		this.grpc = [new GrpcChatConsumer("grpc@grpc-1 (chat A)", `127.0.0.1:${this.cluster.node("grpc-1").grpcPort}`, this.token, chatA, this.startSeq)];
		const deadline = Date.now() + 30_000;
		while (this.tallies.some((t) => t.subscriptions === 0)) {
			if (Date.now() > deadline) throw new Error(`consumers not subscribed: ${this.tallies.filter((t) => t.subscriptions === 0).map((t) => t.name)}`);
			await sleep(100);
		}
		this.pusher = new TelegramPusher(target, 1_000);
		this.sender = new RestSender(this.apiUrls, () => this.token, [chatA, chatB, chatC], "fault-send");
	}

	get apiNames(): string[] {
		return ["api-a", "api-b"];
	}

	get apiUrls(): string[] {
		return this.apiNames.map((name) => this.cluster.node(name).baseUrl);
	}

	get tallies(): EventTally[] {
		return [...this.sockets, ...this.grpc].map((c) => c.tally);
	}

	/** A REST call on api-a that must succeed. */
	async api<T = unknown>(method: string, path: string, body?: unknown): Promise<T> {
		const res = await http<T>(this.apiUrls[0]!, method, `/api/v1${path}`, { body, headers: { authorization: `Bearer ${this.token}` } });
		if (res.status >= 300) throw new Error(`${method} ${path} answered ${res.status}: ${res.text}`);
		return res.body;
	}

	/** One query on a connection of its own (the database may have been restarted since the last). */
	async query<T>(sql: string, values: unknown[] = []): Promise<T[]> {
		const connection = await mysql.createConnection(this.cluster.databaseUrl);
		try {
			const [rows] = await connection.query(sql, values);
			return rows as T[];
		} finally {
			await connection.end();
		}
	}

	async headSeq(): Promise<number> {
		const [row] = await this.query<{ seq: number }>("SELECT COALESCE(MAX(seq), 0) AS seq FROM events");
		return Number(row!.seq);
	}

	/** The bot's update ids stored in [from, to]. */
	async storedUpdateIds(from: number, to: number): Promise<Set<number>> {
		const rows = await this.query<{ update_id: number }>("SELECT update_id FROM telegram_updates WHERE bot_id = ? AND update_id BETWEEN ? AND ?", [this.botId, from, to]);
		return new Set(rows.map((r) => Number(r.update_id)));
	}

	async eventsIn([from, to]: SeqRange): Promise<Array<{ seq: number; chat_id: number | null }>> {
		const rows = await this.query<{ seq: number; chat_id: number | null }>("SELECT seq, chat_id FROM events WHERE seq > ? AND seq <= ? ORDER BY seq", [from, to]);
		return rows.map((r) => ({ seq: Number(r.seq), chat_id: r.chat_id === null ? null : Number(r.chat_id) }));
	}

	/** What each consumer got of the events in `range`, against the log. */
	async fanout(range: SeqRange, resubscribed: Map<string, number> = new Map()): Promise<Record<"webhooks" | "sockets" | "grpc", ConsumerFigures[]>> {
		const events = await this.eventsIn(range);
		const inRange = (seq: number) => seq > range[0] && seq <= range[1];
		const figures = (name: string, expected: number[], counts: Map<number, number>, outOfOrder: number): ConsumerFigures => {
			const got = expected.filter((seq) => counts.has(seq));
			let duplicates = 0;
			for (const [seq, n] of counts) if (inRange(seq)) duplicates += n - 1;
			return { name, expected: expected.length, delivered: got.length, lost: expected.length - got.length, duplicates, out_of_order: outOfOrder, resubscribed: resubscribed.get(name) ?? 0 };
		};
		const webhooks = this.endpoints.map((endpoint) => {
			const counts = new Map<number, number>();
			for (const body of endpoint.receiver.bodies) if (body.seq > 0) counts.set(body.seq, (counts.get(body.seq) ?? 0) + 1);
			return figures(endpoint.name, events.filter((e) => endpoint.wants(e)).map((e) => e.seq), counts, 0);
		});
		const grpcChat = this.chats.get(TELEGRAM_CHATS[0]!)!;
		const streams = (list: Array<SocketConsumer | GrpcChatConsumer>, wants: (e: { chat_id: number | null }) => boolean) =>
			list.map(({ tally }) => figures(tally.name, events.filter(wants).map((e) => e.seq), tally.counts, tally.outOfOrder));
		return { webhooks, sockets: streams(this.sockets, () => true), grpc: streams(this.grpc, (e) => e.chat_id === grpcChat) };
	}

	/** Waits (bounded) until every consumer has every event of `range`; returns the figures then. */
	async waitForFanout(range: SeqRange, timeoutMs: number, resubscribed: Map<string, number>) {
		const deadline = Date.now() + timeoutMs;
		for (;;) {
			const figures = await this.fanout(range, resubscribed);
			const all = [...figures.webhooks, ...figures.sockets, ...figures.grpc];
			if (all.every((c) => c.lost === 0) || Date.now() > deadline) return figures;
			await sleep(500);
		}
	}

	/** Who holds a lease in the shared state ("<node id>:<random>"), or null. */
	async leaseHolder(key: string): Promise<string | null> {
		const redis = new Redis(this.stores.redis.url, { lazyConnect: true, maxRetriesPerRequest: 1 });
		try {
			await redis.connect();
			return await redis.get(`${this.cluster.namespace}:${key}`);
		} finally {
			redis.disconnect();
		}
	}

	/** SIGKILLs a node and starts it again at once (same ports); resolves once it is ready. */
	async killAndRestart(name: string): Promise<void> {
		const node = this.cluster.node(name);
		node.kill("SIGKILL");
		await node.exited;
		this.retired.push(node);
		await this.cluster.start(node.spec);
	}

	/** Writes every node's output (killed ones too) to a directory of its own; returns its path. */
	writeLogs(): string {
		const dir = mkdtempSync(join(tmpdir(), "tgw-faults-logs-"));
		const seen = new Map<string, number>();
		for (const node of [...this.retired, ...(this.cluster ? this.cluster.nodes.values() : [])]) {
			const n = (seen.get(node.name) ?? 0) + 1;
			seen.set(node.name, n);
			writeFileSync(join(dir, `${node.name}.${n}.log`), node.output());
		}
		return dir;
	}

	/** Nodes of the cluster that are not running (none should be, between faults). */
	crashedNodes(): string[] {
		return [...this.cluster.nodes.values()].filter((n) => n.child.exitCode !== null || n.child.signalCode !== null).map((n) => n.name);
	}

	async stop(): Promise<void> {
		for (const consumer of [...this.sockets, ...this.grpc]) consumer.close();
		await Promise.allSettled([this.pusher?.close(), this.sender?.close()]);
		if (this.cluster) {
			await this.cluster.stop().catch(() => undefined);
			console.log(`Node logs: ${this.writeLogs()}`);
		}
		await this.telegram.stop();
		await Promise.allSettled(this.endpoints.map((e) => e.receiver.close()));
		await this.stores?.stop();
	}
}
