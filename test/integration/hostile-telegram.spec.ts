/**
 * Hostile input against the Telegram receiver, POST /api/v1/telegram/webhook/<path> (property-based,
 * fast-check): bodies that are not JSON or not an object, a wrong update_id, real updates (the shared
 * corpus) with wrong types and hostile values anywhere, deep nesting, bodies over 1 MB, wrong or
 * missing secrets, unknown paths. Never a 5xx; a refusal stores nothing; an accepted update is stored
 * once, whole, and readable on every channel (REST, socket.io, WebSocket, gRPC); injection strings in
 * a user's message and chat come back unchanged.
 */
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import * as grpc from "@grpc/grpc-js";
import fc from "fast-check";
import { QueryTypes } from "sequelize";
import type { ChatBody, MessageBody } from "../support/chat-helpers";
import { http, type HttpResult } from "../support/harness";
import { expectNo5xx, expectServing, expectUnchanged, heapUsed, requestLabel, rowCounts, stopWithinHeapBound } from "../support/hostile-checks";
import { grpcCall, grpcCredentials, grpcPortOf } from "../support/hostile-grpc";
import { deepNesting, extremeValue, fieldValue, hostileText, INJECTIONS, type JsonPath, mutatedJson, nestedJson, notJson, runs } from "../support/hostile";
import { connectIo, connectWs } from "../support/realtime-clients";
import { startTelegramGateway, type TelegramGateway } from "../support/telegram-gateway";

const CORPUS = join(__dirname, "..", "..", "..", "shared", "telegram-updates");
const corpus: Array<Record<string, unknown>> = readdirSync(CORPUS)
	.filter((f) => f.endsWith(".json") && f !== "MANIFEST.json")
	.sort()
	.map((f) => JSON.parse(readFileSync(join(CORPUS, f), "utf8")) as Record<string, unknown>);

/** The shapes a reader leans on: wrong types here are what a careless reader trips over. */
const FOCUS: JsonPath[] = [
	["message"],
	["message", "chat"],
	["message", "chat", "id"],
	["message", "chat", "type"],
	["message", "message_id"],
	["message", "date"],
	["message", "edit_date"],
	["message", "from"],
	["message", "from", "id"],
	["message", "text"],
	["message", "entities"],
	["message", "reply_to_message"],
	["message", "reply_to_message", "message_id"],
	["message", "message_thread_id"],
	["message", "photo"],
	["message", "migrate_to_chat_id"],
	["message", "media_group_id"],
	["message", "sender_chat"],
];

/** A private text message with every field FOCUS names. */
const TEXT_UPDATE = {
	update_id: 1,
	message: {
		message_id: 10,
		date: 1_700_000_000,
		edit_date: 1_700_000_100,
		chat: { id: 5150, type: "private", first_name: "Eve", username: "eve" },
		from: { id: 5150, is_bot: false, first_name: "Eve", username: "eve" },
		sender_chat: { id: -100123, title: "a channel", type: "channel" },
		text: "hello",
		entities: [{ type: "bold", offset: 0, length: 5 }],
		reply_to_message: { message_id: 9, date: 1_699_999_999, chat: { id: 5150, type: "private" }, text: "earlier" },
		message_thread_id: 3,
		photo: [{ file_id: "f", file_unique_id: "u", width: 1, height: 1 }],
		migrate_to_chat_id: -1001,
		media_group_id: "g1",
	},
};

describe("hostile input: the Telegram receiver", () => {
	let t: TelegramGateway;
	let botId: number;
	let path: string;
	let secret: string;
	let nextUpdateId = 10_000_000;
	let heapBefore: number;

	beforeAll(async () => {
		t = await startTelegramGateway({ mode: "webhook" });
		const added = await t.addBot({ username: "hostile_receiver_bot" });
		botId = added.bot.id;
		path = added.bot.webhook_url!.split("/").pop()!;
		secret = t.telegram.bot(added.token).webhook!.secret_token!;
		heapBefore = heapUsed();
	}, 60_000);
	afterAll(async () => {
		await stopWithinHeapBound(heapBefore, () => t?.stop());
	});

	const receiver = (to = path) => `/api/v1/telegram/webhook/${to}`;
	const push = (body: string, headers: Record<string, string> = { "x-telegram-bot-api-secret-token": secret }, to = path) =>
		http<unknown>(t.baseUrl, "POST", receiver(to), { raw: body, headers: { "content-type": "application/json", ...headers } });
	const errorOf = (res: HttpResult<unknown>) => (res.body as { error?: { code: string; details?: { fields?: Array<{ field: string }> } } }).error;
	const maxSeq = async () => Number((await t.gw.runtime.db.sequelize.query<{ n: number | null }>("SELECT MAX(seq) AS n FROM events", { type: QueryTypes.SELECT }))[0]!.n ?? 0);

	/** Pushes a body that must be refused: no 5xx, the given status (and code), nothing stored, still serving. */
	async function refused(body: string, status: number, code: string | string[], headers?: Record<string, string>, to?: string): Promise<HttpResult<unknown>> {
		const label = requestLabel("POST", receiver(to), body);
		const before = await rowCounts(t.gw.runtime.db);
		const res = await push(body, headers, to);
		expectNo5xx(res, label);
		const codes = Array.isArray(code) ? code : [code];
		expect({ status: res.status, code: codes.includes(errorOf(res)?.code ?? "") ? codes[0] : errorOf(res)?.code }).toEqual({ status, code: codes[0] });
		expectUnchanged(before, await rowCounts(t.gw.runtime.db), label);
		await expectServing(t.baseUrl, t.adminToken);
		return res;
	}

	/**
	 * An accepted update is stored once and whole: one telegram_updates row (and an event per kind it
	 * carries, none when it carries nothing but update_id), no message without its
	 * chat, no event naming a chat or message that is not there, and each chat and message it touched
	 * readable through REST.
	 */
	async function expectStoredWhole(fromSeq: number, updatesBefore: number, label: string): Promise<void> {
		const { db } = t.gw.runtime;
		expect((await rowCounts(db)).telegram_updates).toBe(updatesBefore + 1);
		const orphans = await db.sequelize.query<{ n: number }>(
			`SELECT (SELECT COUNT(*) FROM messages m LEFT JOIN chats c ON c.id = m.chat_id WHERE c.id IS NULL)
			      + (SELECT COUNT(*) FROM events e LEFT JOIN chats c ON c.id = e.chat_id WHERE e.chat_id IS NOT NULL AND c.id IS NULL)
			      + (SELECT COUNT(*) FROM events e LEFT JOIN messages m ON m.id = e.message_id WHERE e.message_id IS NOT NULL AND m.id IS NULL) AS n`,
			{ type: QueryTypes.SELECT },
		);
		expect(Number(orphans[0]!.n)).toBe(0);
		const touched = await db.sequelize.query<{ chat_id: number | null; message_id: number | null }>("SELECT chat_id, message_id FROM events WHERE seq > ?", {
			type: QueryTypes.SELECT,
			replacements: [fromSeq],
		});
		for (const { chat_id, message_id } of touched) {
			if (chat_id !== null) {
				for (const route of [`/chats/${chat_id}`, `/chats/${chat_id}/messages?limit=5`]) {
					const res = await t.api("GET", route);
					expectNo5xx(res, `GET ${route} after ${label}`);
					expect(res.status).toBe(200);
				}
			}
			if (message_id !== null) {
				const res = await t.api("GET", `/messages/${message_id}`);
				expectNo5xx(res, `GET /messages/${message_id} after ${label}`);
				expect(res.status).toBe(200);
			}
		}
	}

	it("a body that is not JSON: 400 BAD_REQUEST, nothing stored", async () => {
		await fc.assert(fc.asyncProperty(notJson, (body) => refused(body, 400, "BAD_REQUEST").then(() => undefined)), runs(100));
	});

	it("a body of another content type (form, text, XML, multipart, a JSON charset it cannot read): 415 or 400, nothing stored", async () => {
		const contentType = fc.constantFrom("application/x-www-form-urlencoded", "text/plain", "application/xml", "multipart/form-data; boundary=x", "application/json; charset=utf-16", "application/octet-stream", "");
		await fc.assert(
			fc.asyncProperty(contentType, fc.constantFrom(...corpus), async (type, update) => {
				const body = JSON.stringify({ ...update, update_id: nextUpdateId++ });
				const label = requestLabel("POST", `${receiver()} as ${type}`, body);
				const before = await rowCounts(t.gw.runtime.db);
				const res = await http<unknown>(t.baseUrl, "POST", receiver(), { raw: body, headers: { "x-telegram-bot-api-secret-token": secret, ...(type ? { "content-type": type } : {}) } });
				expect([400, 415]).toContain(expectNo5xx(res, label));
				expectUnchanged(before, await rowCounts(t.gw.runtime.db), label);
			}),
			runs(50),
		);
		await expectServing(t.baseUrl, t.adminToken);
	});

	it("JSON that is not an object: 400 (BAD_REQUEST for a bare value, VALIDATION_ERROR for an array), nothing stored", async () => {
		const notObject = fc.jsonValue({ maxDepth: 3 }).filter((v) => v === null || typeof v !== "object" || Array.isArray(v));
		await fc.assert(fc.asyncProperty(notObject, (value) => refused(JSON.stringify(value), 400, ["BAD_REQUEST", "VALIDATION_ERROR"]).then(() => undefined)), runs(100));
	});

	it("an update_id that is missing or not a non-negative safe integer: 400 naming update_id, nothing stored", async () => {
		const badId = fc
			.option(fc.oneof(fieldValue, extremeValue), { nil: undefined, freq: 8 })
			.filter((v) => !(typeof v === "number" && Number.isSafeInteger(v) && v >= 0));
		await fc.assert(
			fc.asyncProperty(fc.constantFrom(...corpus), badId, async (update, id) => {
				const res = await refused(JSON.stringify({ ...update, update_id: id }), 400, "VALIDATION_ERROR");
				expect(errorOf(res)?.details?.fields?.map((f) => f.field)).toEqual(["update_id"]);
			}),
			runs(100),
		);
	});

	it("real updates with wrong types and hostile values anywhere: accepted whole (200) or refused (4xx) with nothing stored, never a 5xx", async () => {
		const update = fc.oneof(
			{ weight: 1, arbitrary: mutatedJson(TEXT_UPDATE, FOCUS) },
			{ weight: 2, arbitrary: fc.constantFrom(...corpus).chain((base) => mutatedJson(base)) },
		);
		const seen: Record<number, number> = {};
		// Keys that attack the objects the update becomes, spelled into the text (JSON.parse keeps them as plain keys).
		const pollute = fc.constantFrom("", '"__proto__":{"polluted":true},', '"constructor":{"prototype":{"polluted":true}},', '"__proto__":{"update_id":1,"is_admin":true},');
		await fc.assert(
			fc.asyncProperty(update, pollute, async ({ value, paths }, keys) => {
				const body = value as Record<string, unknown>;
				if (!paths.some((p) => p[0] === "update_id")) body.update_id = nextUpdateId++;
				const text = JSON.stringify(body).replace(/("message":\{|^\{)/, `$1${keys}`).replace(/,\}/, "}");
				const label = requestLabel("POST", receiver(), text);
				const before = await rowCounts(t.gw.runtime.db);
				const fromSeq = await maxSeq();
				const res = await push(text);
				seen[res.status] = (seen[res.status] ?? 0) + 1;
				if (expectNo5xx(res, label) >= 400) expectUnchanged(before, await rowCounts(t.gw.runtime.db), label);
				else if ((res.body as { duplicate?: boolean }).duplicate !== true) await expectStoredWhole(fromSeq, before.telegram_updates, label);
				await expectServing(t.baseUrl, t.adminToken);
			}),
			runs(200),
		);
		// The mutations leave most updates acceptable: the readers behind the receiver really ran.
		expect(seen[200] ?? 0).toBeGreaterThan(80);
	});

	it("regression: a message time out of a Date's range (2^63, 1e300, -1) is stored without it, not answered 500", async () => {
		for (const date of [2 ** 63, 1e300, -1, 253_402_300_800]) {
			const fromSeq = await maxSeq();
			const before = await rowCounts(t.gw.runtime.db);
			const update = { ...TEXT_UPDATE, update_id: nextUpdateId++, message: { ...TEXT_UPDATE.message, message_id: nextUpdateId, date, edit_date: date } };
			const res = await push(JSON.stringify(update));
			expect([res.status, res.text]).toEqual([200, expect.any(String)]);
			await expectStoredWhole(fromSeq, before.telegram_updates, `date ${date}`);
			const stored = await t.gw.runtime.db.models.Message.findOne({ where: { telegram_message_id: nextUpdateId }, raw: true });
			expect(stored).toMatchObject({ date: null, edit_date: null });
		}
	});

	it("JSON nested deeper than 64 levels, wherever it sits: 400 BAD_REQUEST, nothing stored", async () => {
		const where = fc.constantFrom("update", "message", "text", "entities");
		await fc.assert(
			fc.asyncProperty(deepNesting, where, async ({ depth, kind }, at) => {
				const deep = nestedJson(depth, kind);
				const id = nextUpdateId++;
				const body =
					at === "update"
						? nestedJson(depth, "object", `{"update_id": ${id}}`)
						: at === "message"
							? `{"update_id": ${id}, "message": ${deep}}`
							: at === "text"
								? `{"update_id": ${id}, "message": {"message_id": 1, "date": 1, "chat": {"id": 1, "type": "private"}, "text": ${deep}}}`
								: `{"update_id": ${id}, "message": {"message_id": 1, "date": 1, "chat": {"id": 1, "type": "private"}, "entities": [${deep}]}}`;
				await refused(body, 400, "BAD_REQUEST");
			}),
			runs(50),
		);
	});

	it("a body over 1 MB: 413 PAYLOAD_TOO_LARGE, nothing stored", async () => {
		await fc.assert(
			fc.asyncProperty(fc.integer({ min: 1024 * 1024 + 1, max: 3 * 1024 * 1024 }), fc.constantFrom("text", "padding"), async (size, field) => {
				const body = JSON.stringify({ update_id: nextUpdateId++, message: { message_id: 1, date: 1, chat: { id: 1, type: "private" }, [field]: "x".repeat(size) } });
				await refused(body, 413, "PAYLOAD_TOO_LARGE");
			}),
			runs(6),
		);
	});

	it("a wrong or missing X-Telegram-Bot-Api-Secret-Token: 401 UNAUTHORIZED, nothing stored", async () => {
		const flip = (s: string, i: number) => s.slice(0, i) + (s[i] === "a" ? "b" : "a") + s.slice(i + 1);
		const wrongSecret = fc.oneof(
			fc.nat({ max: 63 }).map((i) => flip(secret, i)),
			fc.constant(secret.toUpperCase()),
			// (Not " " + secret: HTTP drops the spaces around a header value, so that is the secret.)
			fc.constant(secret.slice(0, 63)),
			fc.constant(`${secret}0`),
			fc.stringMatching(/^[0-9a-f]{64}$/),
			fc.string({ unit: "binary-ascii", maxLength: 200 }).map((s) => s.replace(/[^\x20-\x7e]/g, "")),
			fc.constantFrom(...INJECTIONS.filter((s) => /^[\x20-\x7e]*$/.test(s))),
		).filter((s) => s !== secret);
		const header = fc.option(wrongSecret, { nil: undefined, freq: 5 });
		const body = fc.oneof(fc.constantFrom(...corpus).map((u) => ({ ...u })), mutatedJson(TEXT_UPDATE, FOCUS).map((m) => m.value as Record<string, unknown>));
		await fc.assert(
			fc.asyncProperty(header, body, async (value, update) => {
				update.update_id = nextUpdateId++;
				await refused(JSON.stringify(update), 401, "UNAUTHORIZED", value === undefined ? {} : { "x-telegram-bot-api-secret-token": value });
			}),
			runs(100),
		);
	});

	it("a webhook path that is not a bot's: 404 NOT_FOUND, nothing stored", async () => {
		const otherPath = fc
			.oneof(
				fc.stringMatching(/^[0-9a-f]{64}$/),
				fc.constant(path.toUpperCase()),
				fc.constant(`${path}0`),
				fc.constant(path.slice(1)),
				fc.string({ unit: "binary", minLength: 1, maxLength: 100 }).map(encodeURIComponent),
				fc.constantFrom("..%2F..%2Fetc%2Fpasswd", "%00", "x".repeat(129), "x".repeat(5_000), "__proto__", "constructor"),
			)
			.filter((p) => p !== path);
		await fc.assert(
			fc.asyncProperty(otherPath, async (to) => {
				const label = requestLabel("POST", receiver(to));
				const before = await rowCounts(t.gw.runtime.db);
				const res = await push(JSON.stringify({ update_id: nextUpdateId++, message: { message_id: 1, date: 1, chat: { id: 1, type: "private" }, text: "x" } }), undefined, to);
				// 404 for a path no bot has; 400 when the path itself cannot be read (bad percent-encoding, too long).
				expect([400, 404]).toContain(expectNo5xx(res, label));
				expectUnchanged(before, await rowCounts(t.gw.runtime.db), label);
			}),
			runs(100),
		);
		await expectServing(t.baseUrl, t.adminToken);
	});

	it("injection strings in a user's message and chat come back unchanged through REST and socket.io", async () => {
		const io = await connectIo(t.baseUrl, { token: t.adminToken });
		try {
			expect(await io.subscribe({ bot_id: botId })).toMatchObject({ ok: true });
			// Chat names are cut at their column sizes (username 64, names 255 characters): stay within them.
			const short = hostileText.filter((s) => [...s].length <= 64);
			let chatTelegramId = 770_000;
			await fc.assert(
				fc.asyncProperty(hostileText, short, short, short, async (text, title, username, firstName) => {
					chatTelegramId += 1;
					const update = {
						update_id: nextUpdateId++,
						message: {
							message_id: 1,
							date: 1_700_000_000,
							chat: { id: -chatTelegramId, type: "supergroup", title, username },
							from: { id: chatTelegramId, is_bot: false, first_name: firstName, username },
							text,
						},
					};
					const res = await push(JSON.stringify(update));
					expect(res.status).toBe(200);
					const event = await io.waitFor((r) => r.event === "new_message" && (r.payload.message as MessageBody | undefined)?.from?.telegram_id === chatTelegramId);
					const message = event.payload.message as MessageBody;
					expect(message.text).toBe(text);
					expect(message.from).toMatchObject({ first_name: firstName, username });
					const chat = await t.api<ChatBody>("GET", `/chats/${event.payload.chat_id as number}`);
					expect(chat.body).toMatchObject({ telegram_id: -chatTelegramId, title, username });
					const stored = await t.api<MessageBody>("GET", `/messages/${message.id}`);
					expect(stored.body).toMatchObject({ text, from: { first_name: firstName, username } });
				}),
				runs(60),
			);
		} finally {
			io.close();
		}
	});

	it("everything accepted above is readable on every channel: REST pages, socket.io, WebSocket and gRPC replays", async () => {
		const { db } = t.gw.runtime;
		const events = Number((await db.sequelize.query<{ n: number }>("SELECT COUNT(*) AS n FROM events WHERE bot_id = ?", { type: QueryTypes.SELECT, replacements: [botId] }))[0]!.n);
		expect(events).toBeGreaterThan(100);

		// REST: every chat, every page of its history.
		let cursor: string | null = null;
		let chats = 0;
		do {
			const page: HttpResult<{ data: ChatBody[]; next_cursor: string | null }> = await t.api("GET", `/chats?limit=200${cursor ? `&cursor=${cursor}` : ""}`);
			expect(page.status).toBe(200);
			for (const chat of page.body.data) {
				chats += 1;
				let messagesCursor: string | null = null;
				do {
					const history: HttpResult<{ data: MessageBody[]; next_cursor: string | null }> = await t.api("GET", `/chats/${chat.id}/messages?limit=200${messagesCursor ? `&cursor=${messagesCursor}` : ""}`);
					expect([history.status, chat.id]).toEqual([200, chat.id]);
					messagesCursor = history.body.next_cursor;
				} while (messagesCursor);
			}
			cursor = page.body.next_cursor;
		} while (cursor);
		expect(chats).toBeGreaterThan(50);

		// socket.io and WebSocket replay the bot's whole log.
		const io = await connectIo(t.baseUrl, { token: t.adminToken });
		const ws = await connectWs(t.baseUrl, `?token=${t.adminToken}`);
		try {
			expect(await io.subscribe({ bot_id: botId, since_seq: 0 })).toMatchObject({ ok: true });
			expect(await ws.request({ action: "subscribe", bot_id: botId, since_seq: 0 }, (f) => f.type === "subscribed" || f.type === "error")).toMatchObject({ type: "subscribed" });
			await io.waitForSeqs(undefined, events, 20_000);
			await ws.waitForSeqs(undefined, events, 20_000);
			expect(ws.garbage).toEqual([]);
		} finally {
			io.close();
			ws.close();
		}

		// gRPC: StreamMessages since_seq 0 for the bot.
		const client = new grpc.Client(`127.0.0.1:${grpcPortOf(t.gw.broker)}`, grpc.credentials.createInsecure());
		try {
			const outcome = await grpcCall(client, "StreamMessages", { bot_id: botId, since_seq: 0 }, grpcCredentials(t.adminToken), { keepEvents: events, openMs: 5_000 });
			expect({ code: outcome.code, events: outcome.events.length }).toEqual({ code: grpc.status.OK, events });
		} finally {
			client.close();
		}
	}, 60_000);
});
