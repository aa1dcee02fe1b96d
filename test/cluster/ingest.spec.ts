/**
 * Ingest across real processes: the api node hands Telegram's pushes to two workers; the same
 * update reaching both at once is stored once; a worker joining a worker that polls every bot takes
 * about half of them over (one poller per bot throughout), and all move to the survivor within 30 s
 * when one is SIGKILLed, without losing or repeating an update.
 */
import Redis from "ioredis";
import { QueryTypes } from "sequelize";
import { openDatabase, type Database } from "../../lib/db/connection";
import { http } from "../support/harness";
import { TelegramDouble } from "../support/telegram-double";
import { REDIS_URL, startCluster, waitForRoute, type Cluster } from "./support/cluster";

const WORKER = ["auth", "bots", "chats", "ingest", "broker", "delivery"];

async function adminToken(base: string): Promise<string> {
	const res = await http<{ access_token: string }>(base, "POST", "/api/v1/auth/login", { body: { username: "admin", password: "cluster-admin-password" } });
	return res.body.access_token;
}

describe("ingest in webhook mode across two workers", () => {
	const telegram = new TelegramDouble({ redeliveryDelayMs: 50 });
	let cluster: Cluster;
	let db: Database;
	let path: string;
	let secret: string;

	beforeAll(async () => {
		const root = await telegram.start();
		cluster = await startCluster(
			[
				{ name: "api-1", services: ["api", "auth", "realtime"] },
				{ name: "worker-1", services: WORKER },
				{ name: "worker-2", services: WORKER },
			],
			{ TELEGRAM_API_ROOT: root, PUBLIC_URL: "http://127.0.0.1:1" },
		);
		db = await openDatabase(cluster.databaseUrl);
		const base = cluster.node("api-1").baseUrl;
		const token = telegram.addBot();
		const bot = await http<{ webhook_url: string }>(base, "POST", "/api/v1/bots", { body: { token }, headers: { authorization: `Bearer ${await adminToken(base)}` } });
		expect(bot.status).toBe(201);
		path = bot.body.webhook_url.split("/").pop()!;
		secret = telegram.bot(token).webhook!.secret_token!;
	}, 120_000);

	afterAll(async () => {
		await db?.close();
		await cluster?.stop();
		await telegram.stop();
	});

	it("the same update arriving twice at once (on different workers) is stored once", async () => {
		const base = cluster.node("api-1").baseUrl;
		const statuses: number[] = [];
		for (let i = 0; i < 20; i++) {
			const update = { update_id: 100 + i, message: { message_id: i + 1, date: 1_700_000_000, chat: { id: 31, type: "private", first_name: "C" }, text: `twice ${i}` } };
			const send = () =>
				fetch(`${base}/api/v1/telegram/webhook/${path}`, {
					method: "POST",
					headers: { "content-type": "application/json", "x-telegram-bot-api-secret-token": secret },
					body: JSON.stringify(update),
				}).then((r) => r.status);
			statuses.push(...(await Promise.all([send(), send()])));
		}
		expect(statuses.every((s) => s === 200)).toBe(true);
		const [row] = await db.sequelize.query<{ updates: number; messages: number }>(
			"SELECT (SELECT COUNT(*) FROM telegram_updates) AS updates, (SELECT COUNT(*) FROM messages WHERE text LIKE 'twice %') AS messages",
			{ type: QueryTypes.SELECT },
		);
		expect(Number(row!.updates)).toBe(20);
		expect(Number(row!.messages)).toBe(20);
		const events = await db.sequelize.query<{ seq: number }>("SELECT seq FROM events ORDER BY seq", { type: QueryTypes.SELECT });
		expect(events.map((e) => Number(e.seq))).toEqual(Array.from({ length: 20 }, (_, i) => i + 1));
	});

	it("MariaDB stores what SQLite does: a message over TEXT's 64 KB, and Idempotency-Keys apart by letter case", async () => {
		const base = cluster.node("api-1").baseUrl;
		// A group that 1,000 members joined at once: ~110 KB of media, far under the 1 MB body limit.
		const members = Array.from({ length: 1_000 }, (_, i) => ({ id: 5_000 + i, is_bot: false, first_name: `Member number ${i} with a long name`, username: `member_${i}_username` }));
		const update = { update_id: 900, message: { message_id: 900, date: 1_700_000_000, chat: { id: -32, type: "group", title: "Big" }, from: members[0], new_chat_members: members } };
		const pushed = await fetch(`${base}/api/v1/telegram/webhook/${path}`, {
			method: "POST",
			headers: { "content-type": "application/json", "x-telegram-bot-api-secret-token": secret },
			body: JSON.stringify(update),
		});
		expect(pushed.status).toBe(200);
		const [stored] = await db.sequelize.query<{ bytes: number; chat_id: number }>("SELECT LENGTH(media) AS bytes, chat_id FROM messages WHERE telegram_message_id = 900", { type: QueryTypes.SELECT });
		expect(Number(stored!.bytes)).toBeGreaterThan(65_535);

		const headers = { authorization: `Bearer ${await adminToken(base)}` };
		const send = (key: string) => http<{ id: number }>(base, "POST", `/api/v1/chats/${stored!.chat_id}/messages`, { body: { text: "same text" }, headers: { ...headers, "idempotency-key": key } });
		const ids = [];
		for (const key of ["Key-AbC", "key-abc", "KEY-ABC"]) {
			const answer = await send(key);
			expect([201, 202]).toContain(answer.status);
			ids.push(answer.body.id);
		}
		expect(new Set(ids).size).toBe(3);
	});
});

describe("long polling spread over the ingest nodes: one joins, then one is killed", () => {
	const BOTS = 40;
	const telegram = new TelegramDouble();
	let cluster: Cluster;
	let db: Database;
	let redis: Redis;
	const bots: Array<{ id: number; token: string }> = [];
	/** What each bot's user sent, in order. */
	const sent: string[][] = Array.from({ length: BOTS }, () => []);

	const send = (text: (i: number) => string) =>
		bots.forEach((bot, i) => {
			sent[i]!.push(text(i));
			telegram.userSends(bot.token, { chat_id: 600 + i, text: text(i) });
		});
	const storedUpdates = async () => Number((await db.sequelize.query<{ n: number }>("SELECT COUNT(*) AS n FROM telegram_updates", { type: QueryTypes.SELECT }))[0]!.n);
	/** Each bot's texts in the order they were stored. */
	const storedByBot = async () => {
		const rows = await db.sequelize.query<{ text: string }>("SELECT text FROM messages WHERE direction = 'incoming' ORDER BY seq", { type: QueryTypes.SELECT });
		return bots.map((_bot, i) => rows.map((r) => r.text).filter((text) => text.startsWith(`bot ${i} `)));
	};
	/** The node holding each bot's poller lease (its owner is `<nodeID>:<random>`), or null. */
	const pollingNodes = async () => {
		const holders = await redis.mget(bots.map((bot) => `${cluster.namespace}:poller:bot:${bot.id}`));
		return holders.map((holder) => (holder === null ? null : holder.slice(0, holder.lastIndexOf(":"))));
	};
	const countOf = (nodes: Array<string | null>, node: string) => nodes.filter((n) => n === node).length;

	async function until<T>(what: string, ms: number, probe: () => Promise<T | undefined | false>): Promise<T> {
		const deadline = Date.now() + ms;
		for (;;) {
			const value = await probe();
			if (value) return value;
			if (Date.now() > deadline) throw new Error(`${what}: not within ${ms} ms`);
			await new Promise((r) => setTimeout(r, 200));
		}
	}

	beforeAll(async () => {
		const root = await telegram.start();
		cluster = await startCluster(
			[
				{ name: "api-1", services: ["api", "auth", "realtime"] },
				{ name: "worker-1", services: WORKER },
			],
			{ TELEGRAM_API_ROOT: root },
		);
		db = await openDatabase(cluster.databaseUrl);
		redis = new Redis(REDIS_URL);
		const base = cluster.node("api-1").baseUrl;
		await waitForRoute(base, "/api/v1/bots");
		const headers = { authorization: `Bearer ${await adminToken(base)}` };
		for (let i = 0; i < BOTS; i += 10) {
			const added = await Promise.all(
				Array.from({ length: 10 }, async () => {
					const token = telegram.addBot();
					const bot = await http<{ id: number; mode: string }>(base, "POST", "/api/v1/bots", { body: { token }, headers });
					expect(bot.body.mode).toBe("polling");
					return { id: bot.body.id, token };
				}),
			);
			bots.push(...added);
		}
	}, 120_000);

	afterAll(async () => {
		redis?.disconnect();
		await db?.close();
		await cluster?.stop();
		await telegram.stop();
	});

	it("a second worker joins: the first hands about half of the bots over, a few at a time, and every update sent meanwhile is stored once", async () => {
		// Alone, worker-1 polls every bot.
		await until("every bot polled by worker-1", 15_000, async () => countOf(await pollingNodes(), "worker-1") === BOTS);
		send((i) => `bot ${i} before`);
		const joined = Date.now();
		await cluster.start({ name: "worker-2", services: WORKER });
		// Users keep writing while the pollers move. A share of ceil(40 / 2) = 20 each, kept once
		// within a slack of 2; handed over a quarter of the share (5) at a time, at most every 4 s.
		let round = 0;
		const spread = await until("about half the bots polled by each worker", 40_000, async () => {
			const now = round++;
			send((i) => `bot ${i} during ${now}`);
			await new Promise((r) => setTimeout(r, 800));
			const nodes = await pollingNodes();
			const one = countOf(nodes, "worker-1");
			const two = countOf(nodes, "worker-2");
			expect(BOTS - one).toBeLessThanOrEqual(5 * (Math.floor((Date.now() - joined) / 4_000) + 1));
			return one + two === BOTS && one <= 22 && two >= 18 && nodes;
		});
		await until("every update stored", 20_000, async () => (await storedUpdates()) >= sent.flat().length);
		expect(await storedByBot()).toEqual(sent);
		expect(await storedUpdates()).toBe(sent.flat().length);
		// Settled, and Telegram never saw two pollers of a bot at once (it answers 409 to the older).
		expect(await pollingNodes()).toEqual(spread);
		expect(await db.sequelize.query("SELECT id, last_error FROM bots WHERE last_error IS NOT NULL", { type: QueryTypes.SELECT })).toEqual([]);
		for (const name of ["worker-1", "worker-2"]) expect(cluster.node(name).output()).not.toMatch(/getUpdates refused \(409\)/);
	});

	it("a worker killed: the other polls every bot within 30 s, from the stored offsets: nothing lost, nothing twice", async () => {
		cluster.node("worker-1").kill("SIGKILL");
		const killedAt = Date.now();
		send((i) => `bot ${i} after`);
		await until("every bot polled by worker-2", 30_000, async () => countOf(await pollingNodes(), "worker-2") === BOTS);
		await until("the later updates stored", 30_000, async () => (await storedUpdates()) >= sent.flat().length);
		expect(Date.now() - killedAt).toBeLessThan(30_000);
		expect(await storedByBot()).toEqual(sent);
		expect(await storedUpdates()).toBe(sent.flat().length);
	});
});

describe("sending across the cluster", () => {
	const telegram = new TelegramDouble({ floodLimits: true });
	let cluster: Cluster;

	beforeAll(async () => {
		const root = await telegram.start();
		cluster = await startCluster(
			[
				{ name: "api-1", services: ["api", "auth", "realtime"] },
				{ name: "worker-1", services: WORKER },
				{ name: "worker-2", services: WORKER },
			],
			{ TELEGRAM_API_ROOT: root },
		);
	}, 120_000);

	afterAll(async () => {
		await cluster?.stop();
		await telegram.stop();
	});

	it("a message posted on the api node is sent once, paced, whichever worker holds the bot's sender lease", async () => {
		const base = cluster.node("api-1").baseUrl;
		const auth = { authorization: `Bearer ${await adminToken(base)}` };
		const token = telegram.addBot();
		expect((await http(base, "POST", "/api/v1/bots", { body: { token }, headers: auth })).status).toBe(201);
		telegram.userSends(token, { chat_id: 700, text: "hi" });
		const chatId = await (async () => {
			for (let i = 0; i < 100; i++) {
				const chats = await http<{ data: Array<{ id: number }> }>(base, "GET", "/api/v1/chats", { headers: auth });
				if (chats.body.data[0]) return chats.body.data[0].id;
				await new Promise((r) => setTimeout(r, 200));
			}
			throw new Error("no chat");
		})();
		const results = await Promise.all(
			[1, 2, 3].map((i) => http<{ status: string }>(base, "POST", `/api/v1/chats/${chatId}/messages`, { body: { text: `reply ${i}` }, headers: auth })),
		);
		expect(results.map((r) => r.status).every((s) => s === 201 || s === 202)).toBe(true);
		for (let i = 0; i < 100 && telegram.sent.length < 3; i++) await new Promise((r) => setTimeout(r, 100));
		expect(telegram.sent.map((s) => s.text).sort()).toEqual(["reply 1", "reply 2", "reply 3"]);
		expect(telegram.floodRefusals).toEqual([]);
		const times = telegram.sent.map((s) => s.at).sort((a, b) => a - b);
		for (let i = 1; i < times.length; i++) expect(times[i]! - times[i - 1]!).toBeGreaterThanOrEqual(950);
	});
});
