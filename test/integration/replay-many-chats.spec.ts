/**
 * Replay for a non-admin principal that may read more chats than any id list the log was once given
 * (10,000): a bot subscription with since_seq replays every stored event of every chat it may read,
 * in order, and nothing of the chats it may not, then goes live with no gap and no duplicate, for a
 * user on socket.io and an API key (its own grants, not its owner's) on the plain WebSocket. Also:
 * the periodic re-check of live connections never runs two passes at once.
 */
import { QueryTypes } from "sequelize";
import { ADMIN_PASSWORD, adminToken, createKey, createUser } from "../support/auth";
import { insertBot, updateDraft } from "../support/database";
import { startTestGateway, type TestGateway } from "../support/harness";
import { connectIo, connectWs, pause, waitUntil, type IoClient, type Payload, type WsClient } from "../support/realtime-clients";
import { appendEvents, type GatewayEvent } from "../../services/broker/event-log";
import type { EventFeed } from "../../services/broker/feed";
import { publishEvents } from "../../services/broker/publish";

/** More than the 10,000 ids the replay once kept of a principal's readable chats. */
const CHATS = 10_050;
const STAMP = "2026-01-01 00:00:00.000 +00:00";

describe("replay for a principal that may read more than 10,000 chats", () => {
	let gw: TestGateway;
	let botId: number;
	/** chats.id of the CHATS chats, in id order. */
	let chatIds: number[];
	let viewer: { id: number; token: string };
	let key: { id: number; key: string };
	const clients: Array<IoClient | WsClient> = [];

	async function sql(text: string, replacements: Record<string, unknown> = {}): Promise<void> {
		await gw.runtime.db.sequelize.query(text, { replacements });
	}

	/** Grants can_read on every chat but the excluded ones, in one statement (10k rows through the API would take minutes). */
	async function grantAll(column: "user_id" | "api_key_id", id: number, except: number[]): Promise<void> {
		await sql(
			`INSERT INTO chat_permissions (chat_id, ${column}, can_read, can_send, can_manage, created_at, updated_at)
			 SELECT id, :id, 1, 0, 0, :stamp, :stamp FROM chats WHERE bot_id = :botId AND id NOT IN (:except)`,
			{ id, stamp: STAMP, botId, except },
		);
	}

	async function append(chatId: number, text: string): Promise<GatewayEvent> {
		const db = gw.runtime.db;
		const [event] = await db.transaction((t) => appendEvents(db, t, [updateDraft(botId, chatId, text)]));
		return event!;
	}

	beforeAll(async () => {
		gw = await startTestGateway({ nodes: [["api", "auth", "broker", "realtime"]], env: { ADMIN_PASSWORD } });
		botId = Number((await insertBot(gw.runtime.db)).id);
		await sql(
			`WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < :count)
			 INSERT INTO chats (bot_id, telegram_id, type, first_name, is_forum, created_at, updated_at)
			 SELECT :botId, 7000000 + i, 'private', 'Test', 0, :stamp, :stamp FROM n`,
			{ count: CHATS, botId, stamp: STAMP },
		);
		const rows = await gw.runtime.db.sequelize.query<{ id: number }>("SELECT id FROM chats WHERE bot_id = :botId ORDER BY id", {
			type: QueryTypes.SELECT,
			replacements: { botId },
		});
		chatIds = rows.map((r) => Number(r.id));
		expect(chatIds).toHaveLength(CHATS);

		const admin = await adminToken(gw);
		viewer = await createUser(gw, admin, ["viewer"]);
		const operator = await createUser(gw, admin, ["operator"]);
		const created = await createKey(gw.baseUrl, operator.token);
		key = { id: created.id, key: created.key };
		// The viewer reads every chat but the second; the key every chat but the third (the operator, its owner, none).
		await grantAll("user_id", viewer.id, [chatIds[1]!]);
		await grantAll("api_key_id", key.id, [chatIds[2]!]);
	}, 120_000);
	afterEach(() => {
		for (const client of clients.splice(0)) client.close();
	});
	afterAll(() => gw?.stop());

	/**
	 * Events in the first chat, in chats it may not read, and in the last chats (past the first
	 * 10,000 it may read): returns what it must see, in seq order.
	 */
	async function storeEvents(hidden: number): Promise<{ since: number; expected: number[] }> {
		const since = (await gw.broker.call<{ seq: number }>("broker.head")).seq;
		const expected: number[] = [];
		const last = chatIds[CHATS - 1]!;
		const beyond = chatIds[10_020]!;
		for (const [chatId, visible] of [
			[chatIds[0]!, true],
			[beyond, true],
			[hidden, false],
			[last, true],
			[beyond, true],
		] as const) {
			const event = await append(chatId, `in ${chatId}`);
			if (visible) expected.push(event.seq);
		}
		// Past this node's live feed before anyone subscribes: these events can only come by replay.
		const head = (await gw.broker.call<{ seq: number }>("broker.head")).seq;
		const { feed } = gw.broker.getLocalService("realtime") as unknown as { feed: EventFeed };
		await waitUntil(() => feed.position >= head, 5_000, `the live feed to pass seq ${head}`);
		return { since, expected };
	}

	it("socket.io, a user: every readable chat's events are replayed, in order, then live ones follow once", async () => {
		const { since, expected } = await storeEvents(chatIds[1]!);
		const client = await connectIo(gw.baseUrl, { token: viewer.token });
		clients.push(client);
		expect(await client.subscribe({ bot_id: botId, since_seq: since })).toEqual({ ok: true, bot_id: botId });
		// A gap shows as missing seqs below (the wait ends either way).
		await client.waitForSeqs(undefined, expected.length, 5_000).catch(() => undefined);
		expect(client.seqs()).toEqual(expected);

		const live = await append(chatIds[CHATS - 1]!, "live");
		await publishEvents(gw.broker, [live]);
		await client.waitForSeqs(undefined, expected.length + 1);
		await pause(300);
		expect(client.seqs()).toEqual([...expected, live.seq]);
	});

	it("plain WebSocket, an API key: its own grants bound the replay, whatever their number", async () => {
		const { since, expected } = await storeEvents(chatIds[2]!);
		const client = await connectWs(gw.baseUrl, `?token=${key.key}`);
		clients.push(client);
		const answer = await client.request({ action: "subscribe", bot_id: botId, since_seq: since }, (f: Payload) => f.type === "subscribed" || f.type === "error");
		expect(answer).toEqual({ type: "subscribed", bot_id: botId });
		// A gap shows as missing seqs below (the wait ends either way).
		await client.waitForSeqs(undefined, expected.length, 5_000).catch(() => undefined);
		expect(client.seqs()).toEqual(expected);

		const live = await append(chatIds[10_040]!, "live");
		await publishEvents(gw.broker, [live]);
		await client.waitForSeqs(undefined, expected.length + 1);
		await pause(300);
		expect(client.seqs()).toEqual([...expected, live.seq]);
	});

	it("the periodic re-check of live connections does not start while the previous one still runs", async () => {
		const client = await connectIo(gw.baseUrl, { token: viewer.token });
		clients.push(client);
		const realtime = gw.broker.getLocalService("realtime") as unknown as {
			resolveCredential(credential: string): Promise<unknown>;
			revalidateEveryone(): Promise<void>;
			logger: { warn(...args: unknown[]): void };
		};
		const original = realtime.resolveCredential;
		const warn = jest.spyOn(realtime.logger, "warn");
		let calls = 0;
		let release!: () => void;
		const slow = new Promise<void>((resolve) => (release = resolve));
		realtime.resolveCredential = async (credential) => {
			calls += 1;
			await slow; // auth answering slower than the 15 s period
			return original.call(realtime, credential);
		};
		try {
			const pass = realtime.revalidateEveryone();
			await realtime.revalidateEveryone();
			await realtime.revalidateEveryone();
			expect(calls).toBe(1);
			expect(warn.mock.calls.filter(([message]) => String(message).includes("Re-checking live connections"))).toHaveLength(1);
			release();
			await pass;
			await realtime.revalidateEveryone();
			expect(calls).toBe(2);
			expect(client.connected).toBe(true);
		} finally {
			realtime.resolveCredential = original;
			warn.mockRestore();
		}
	});

	it("the log's replay takes the principal, not its chat list: no id list crosses the transporter", async () => {
		const { since, expected } = await storeEvents(chatIds[1]!);
		const page = await gw.broker.call<GatewayEvent[], object>("broker.replay", { after_seq: since, bot_id: botId, reader: { type: "user", id: viewer.id } });
		expect(page.map((e) => e.seq)).toEqual(expected);
		await expect(gw.broker.call("broker.replay", { after_seq: since, reader: { type: "owner", id: viewer.id } })).rejects.toMatchObject({ name: "ValidationError" });
	});

	it("an API key reader is bound by the key's own grants, never its owner's; the chat list sent beside a reader (for brokers of earlier versions) is not applied", async () => {
		const [owner] = await gw.runtime.db.sequelize.query<{ user_id: number }>("SELECT user_id FROM api_keys WHERE id = :id", { type: QueryTypes.SELECT, replacements: { id: key.id } });
		// The owner may read the one chat its key may not.
		await sql("INSERT INTO chat_permissions (chat_id, user_id, can_read, can_send, can_manage, created_at, updated_at) VALUES (:chat, :user, 1, 0, 0, :stamp, :stamp)", {
			chat: chatIds[2]!,
			user: owner!.user_id,
			stamp: STAMP,
		});
		const { since, expected } = await storeEvents(chatIds[2]!);
		const page = await gw.broker.call<GatewayEvent[], object>("broker.replay", {
			after_seq: since,
			bot_id: botId,
			reader: { type: "api_key", id: key.id },
			chat_ids: [chatIds[0]!],
		});
		expect(page.map((e) => e.seq)).toEqual(expected);
	});
});
