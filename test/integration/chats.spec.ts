/**
 * Reading chats and history through REST: GET /chats (ACL-filtered, ?bot_id=, paging), GET /chats/:id,
 * GET /chats/:id/messages (newest first, before_seq / after_seq, cursors), GET /messages/:id, the
 * message shape of API.md, edits, photos and replies. Chats come from the Telegram double playing users.
 */
import { createKey, createUser, errorFields, expectApiError, type TestUser } from "../support/auth";
import {
	CHAT_FIELDS,
	ISO,
	MESSAGE_FIELDS,
	rowCounts,
	userWrites,
	waitForEvent,
	type ChatBody,
	type MessageBody,
	type Page,
} from "../support/chat-helpers";
import { startTelegramGateway, type TelegramGateway } from "../support/telegram-gateway";

describe("chats and history (REST)", () => {
	let t: TelegramGateway;
	let botA: { id: number; token: string };
	let botB: { id: number; token: string };
	/** Gateway chat ids: two chats of bot A, one of bot B. */
	let chatA1: number;
	let chatA2: number;
	let chatB1: number;
	let viewer: TestUser;

	beforeAll(async () => {
		t = await startTelegramGateway({ mode: "webhook" });
		const a = await t.addBot({ username: "reader_a_bot" });
		const b = await t.addBot({ username: "reader_b_bot" });
		botA = { id: a.bot.id, token: a.token };
		botB = { id: b.bot.id, token: b.token };
		chatA1 = (await userWrites(t, botA.token, botA.id, { chat_id: 1001, text: "hello from 1001" })).chatId;
		chatA2 = (await userWrites(t, botA.token, botA.id, { chat_id: 1002, text: "hello from 1002" })).chatId;
		chatB1 = (await userWrites(t, botB.token, botB.id, { chat_id: 2001, text: "hello from 2001" })).chatId;
		viewer = await createUser(t.gw, t.adminToken, ["viewer"]);
	}, 60_000);
	afterAll(() => t.stop());

	const grant = async (chatId: number, body: Record<string, unknown>) => {
		const res = await t.api("PUT", `/chats/${chatId}/permissions`, body);
		expect([200, 201]).toContain(res.status);
	};
	const listChats = (query = "", token?: string) => t.api<Page<ChatBody>>("GET", `/chats${query}`, undefined, token);
	const history = (chatId: number, query = "", token?: string) => t.api<Page<MessageBody>>("GET", `/chats/${chatId}/messages${query}`, undefined, token);

	describe("GET /chats", () => {
		it("the admin sees every chat, in the chat shape of API.md", async () => {
			const res = await listChats();
			expect(res.status).toBe(200);
			expect(res.body.next_cursor).toBeNull();
			expect(res.body.data.map((c) => c.id)).toEqual([chatA1, chatA2, chatB1]);
			const chat = res.body.data[0]!;
			for (const field of CHAT_FIELDS) expect(Object.keys(chat)).toContain(field);
			expect(chat).toMatchObject({
				id: chatA1,
				bot_id: botA.id,
				telegram_id: 1001,
				type: "private",
				title: null,
				username: "user1001",
				first_name: "Test",
				last_name: "User1001",
			});
			expect(chat.created_at).toMatch(ISO);
			expect(chat.updated_at).toMatch(ISO);
		});

		it("a viewer with no grant gets an empty list, not an error; with can_read on one chat, only that chat", async () => {
			const lonely = await createUser(t.gw, t.adminToken, ["viewer"]);
			const empty = await listChats("", lonely.token);
			expect(empty.status).toBe(200);
			expect(empty.body).toEqual({ data: [], next_cursor: null });

			const reader = await createUser(t.gw, t.adminToken, ["viewer"]);
			await grant(chatA2, { user_id: reader.id, can_read: true });
			const one = await listChats("", reader.token);
			expect(one.status).toBe(200);
			expect(one.body.data.map((c) => c.id)).toEqual([chatA2]);
			expect(one.body.next_cursor).toBeNull();
			expect((await listChats(`?bot_id=${botB.id}`, reader.token)).body).toEqual({ data: [], next_cursor: null });

			// can_send alone does not make a chat readable.
			const sender = await createUser(t.gw, t.adminToken, ["operator"]);
			await grant(chatB1, { user_id: sender.id, can_send: true });
			expect((await listChats("", sender.token)).body).toEqual({ data: [], next_cursor: null });
		});

		it("?bot_id= lists one bot's chats; an unknown bot gives an empty list; a malformed one is 400 naming bot_id", async () => {
			const a = await listChats(`?bot_id=${botA.id}`);
			expect(a.status).toBe(200);
			expect(a.body.data.map((c) => c.id)).toEqual([chatA1, chatA2]);
			expect(a.body.data.every((c) => c.bot_id === botA.id)).toBe(true);
			expect((await listChats(`?bot_id=${botB.id}`)).body.data.map((c) => c.id)).toEqual([chatB1]);
			expect((await listChats("?bot_id=99999")).body).toEqual({ data: [], next_cursor: null });
			const bad = await listChats("?bot_id=abc");
			expectApiError(bad, 400, "VALIDATION_ERROR");
			expect(errorFields(bad)).toContain("bot_id");
		});

		it("pages with limit and next_cursor until next_cursor is null; a foreign cursor or a bad limit is 400", async () => {
			const seen: number[] = [];
			let cursor: string | null = null;
			for (let page = 0; page < 10; page++) {
				const res: Awaited<ReturnType<typeof listChats>> = await listChats(`?limit=1${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ""}`);
				expect(res.status).toBe(200);
				expect(res.body.data.length).toBeLessThanOrEqual(1);
				seen.push(...res.body.data.map((c) => c.id));
				cursor = res.body.next_cursor;
				if (cursor === null) break;
				expect(typeof cursor).toBe("string");
			}
			expect(cursor).toBeNull();
			expect(seen).toEqual([chatA1, chatA2, chatB1]);
			const two = await listChats("?limit=2");
			expect(two.body.data.map((c) => c.id)).toEqual([chatA1, chatA2]);
			expect((await listChats(`?limit=2&cursor=${two.body.next_cursor}`)).body).toMatchObject({ data: [{ id: chatB1 }], next_cursor: null });

			// Cursors are opaque and belong to their list: made up ("k:0", what they once were), or another
			// list's (the bots', the chats' on a chat's history), is a 400 naming cursor, not a silently wrong page.
			const botsCursor = (await t.api<Page<unknown>>("GET", "/bots?limit=1")).body.next_cursor;
			expect(typeof botsCursor).toBe("string");
			const forged = ["not-a-cursor", Buffer.from("k:abc").toString("base64url"), Buffer.from("k:0").toString("base64url"), Buffer.from("k:-1").toString("base64url")];
			for (const cursorValue of [...forged, botsCursor!]) {
				const res = await listChats(`?cursor=${encodeURIComponent(cursorValue)}`);
				expectApiError(res, 400, "VALIDATION_ERROR");
				expect(errorFields(res)).toEqual(["cursor"]);
			}
			// A cursor belongs to its filters too: one of bot A's chats is refused by the list of every chat and by bot B's.
			const ofBotA = (await listChats(`?bot_id=${botA.id}&limit=1`)).body.next_cursor;
			expect(typeof ofBotA).toBe("string");
			for (const query of ["", `&bot_id=${botA.id + 1}`]) {
				const res = await listChats(`?cursor=${encodeURIComponent(ofBotA!)}${query}`);
				expectApiError(res, 400, "VALIDATION_ERROR");
				expect(errorFields(res)).toEqual(["cursor"]);
			}
			expect((await listChats(`?bot_id=${botA.id}&cursor=${encodeURIComponent(ofBotA!)}`)).status).toBe(200);
			const onHistory = await history(chatA1, `?cursor=${encodeURIComponent(two.body.next_cursor!)}`);
			expectApiError(onHistory, 400, "VALIDATION_ERROR");
			expect(errorFields(onHistory)).toEqual(["cursor"]);
			for (const limit of ["0", "201", "x"]) {
				const res = await listChats(`?limit=${limit}`);
				expectApiError(res, 400, "VALIDATION_ERROR");
				expect(errorFields(res)).toContain("limit");
			}
		});
	});

	describe("GET /chats/:id", () => {
		it("is 200 for the admin, 404 for an unknown chat, 403 without can_read, 200 with it", async () => {
			const res = await t.api<ChatBody>("GET", `/chats/${chatB1}`);
			expect(res.status).toBe(200);
			expect(res.body).toMatchObject({ id: chatB1, bot_id: botB.id, telegram_id: 2001, type: "private" });
			expectApiError(await t.api("GET", "/chats/987654"), 404, "NOT_FOUND");

			const stranger = await createUser(t.gw, t.adminToken, ["viewer"]);
			const refused = await t.api("GET", `/chats/${chatB1}`, undefined, stranger.token);
			expectApiError(refused, 403, "FORBIDDEN");
			expect(refused.text).not.toContain("2001");
			await grant(chatB1, { user_id: stranger.id, can_read: true });
			expect((await t.api("GET", `/chats/${chatB1}`, undefined, stranger.token)).body).toMatchObject({ id: chatB1 });
		});
	});

	describe("GET /chats/:id/messages", () => {
		let chat: number;
		let seqs: number[];
		const texts = ["m1", "m2", "m3", "m4", "m5"];

		beforeAll(async () => {
			seqs = [];
			for (const text of texts) {
				const written = await userWrites(t, botA.token, botA.id, { chat_id: 1003, text });
				chat = written.chatId;
				seqs.push(written.message.seq!);
			}
		}, 60_000);

		it("lists newest first; limit and next_cursor continue downwards; before_seq starts below a seq", async () => {
			const all = await history(chat);
			expect(all.status).toBe(200);
			expect(all.body.data.map((m) => m.text)).toEqual(["m5", "m4", "m3", "m2", "m1"]);
			expect(all.body.data.map((m) => m.seq)).toEqual([...seqs].reverse());
			expect(all.body.next_cursor).toBeNull();

			const first = await history(chat, "?limit=2");
			expect(first.body.data.map((m) => m.text)).toEqual(["m5", "m4"]);
			expect(first.body.next_cursor).toEqual(expect.any(String));
			const second = await history(chat, `?limit=2&cursor=${first.body.next_cursor}`);
			expect(second.body.data.map((m) => m.text)).toEqual(["m3", "m2"]);
			const third = await history(chat, `?limit=2&cursor=${second.body.next_cursor}`);
			expect(third.body).toMatchObject({ data: [{ text: "m1" }], next_cursor: null });

			expect((await history(chat, `?before_seq=${seqs[3]}`)).body.data.map((m) => m.text)).toEqual(["m3", "m2", "m1"]);
			const below = await history(chat, `?before_seq=${seqs[3]}&limit=1`);
			expect(below.body.data.map((m) => m.text)).toEqual(["m3"]);
			expect((await history(chat, `?before_seq=${seqs[3]}&limit=1&cursor=${below.body.next_cursor}`)).body.data.map((m) => m.text)).toEqual(["m2"]);
		});

		it("after_seq lists oldest first from there, and next_cursor continues upwards", async () => {
			const up = await history(chat, `?after_seq=${seqs[1]}`);
			expect(up.status).toBe(200);
			expect(up.body).toMatchObject({ next_cursor: null });
			expect(up.body.data.map((m) => m.text)).toEqual(["m3", "m4", "m5"]);
			const page1 = await history(chat, `?after_seq=${seqs[0]}&limit=2`);
			expect(page1.body.data.map((m) => m.text)).toEqual(["m2", "m3"]);
			const page2 = await history(chat, `?after_seq=${seqs[0]}&limit=2&cursor=${page1.body.next_cursor}`);
			expect(page2.body.data.map((m) => m.text)).toEqual(["m4", "m5"]);
			expect(page2.body.next_cursor).toBeNull();
			expect((await history(chat, "?after_seq=0")).body.data.map((m) => m.text)).toEqual(texts);
		});

		it("refuses bad parameters with 400 naming them, an unknown chat with 404, and a reader without can_read with 403", async () => {
			for (const [query, field] of [
				["?before_seq=abc", "before_seq"],
				["?after_seq=-1", "after_seq"],
				["?limit=0", "limit"],
				["?cursor=nonsense", "cursor"],
			] as const) {
				const res = await history(chat, query);
				expectApiError(res, 400, "VALIDATION_ERROR");
				expect(errorFields(res)).toContain(field);
			}
			expectApiError(await history(987_654), 404, "NOT_FOUND");
			const refused = await history(chat, "", viewer.token);
			expectApiError(refused, 403, "FORBIDDEN");
			expect(refused.text).not.toContain("m5");
		});
	});

	it("a message has the shape of API.md, with its sender, entities and Telegram's date", async () => {
		const { chatId, message, update } = await userWrites(t, botA.token, botA.id, { chat_id: 1004, text: "/start see https://example.com" });
		const res = await t.api<MessageBody>("GET", `/messages/${message.id}`);
		expect(res.status).toBe(200);
		for (const field of MESSAGE_FIELDS) expect(Object.keys(res.body)).toContain(field);
		expect(res.body).toMatchObject({
			id: message.id,
			seq: expect.any(Number),
			chat_id: chatId,
			bot_id: botA.id,
			telegram_message_id: update.message!.message_id,
			direction: "incoming",
			type: "text",
			text: "/start see https://example.com",
			caption: null,
			entities: update.message!.entities,
			from: { telegram_id: 1004, username: "user1004", first_name: "Test", last_name: "User1004", is_bot: false },
			reply_to_message_id: null,
			thread_id: null,
			media: null,
			date: new Date(update.message!.date * 1000).toISOString(),
			edit_date: null,
		});
		expect(update.message!.entities).toEqual([
			{ type: "bot_command", offset: 0, length: 6 },
			{ type: "url", offset: 11, length: 19 },
		]);
		const listed = await history(chatId);
		expect(listed.body.data).toEqual([res.body]);
	});

	it("an edit keeps the message's id and seq, updates text and edit_date, and keeps the history in message_edits", async () => {
		const { chatId, message, update } = await userWrites(t, botA.token, botA.id, { chat_id: 1005, text: "first version" });
		const edit = t.telegram.userEdits(botA.token, { chat_id: 1005, message_id: update.message!.message_id, text: "second version" });
		const edited = await waitForEvent(t, (e) => e.type === "edited_message" && e.message?.id === message.id);
		expect(edited.seq).toBeGreaterThan(message.seq!);

		const res = await t.api<MessageBody>("GET", `/messages/${message.id}`);
		expect(res.status).toBe(200);
		expect(res.body).toMatchObject({
			id: message.id,
			seq: message.seq,
			telegram_message_id: update.message!.message_id,
			text: "second version",
			date: message.date,
			edit_date: new Date(edit.edited_message!.edit_date! * 1000).toISOString(),
		});
		const listed = await history(chatId);
		expect(listed.body.data.map((m) => [m.id, m.text])).toEqual([[message.id, "second version"]]);

		const edits = await t.gw.runtime.db.models.MessageEdit.findAll({ where: { message_id: message.id }, raw: true });
		expect(edits).toHaveLength(1);
		expect(edits[0]).toMatchObject({ text: "second version", seq: edited.seq });
	});

	it("a photo has type photo, its caption, and media naming the largest size's file_id", async () => {
		const photo = [
			{ file_id: "photo-small", file_unique_id: "u-small", width: 90, height: 67, file_size: 1_317 },
			{ file_id: "photo-large", file_unique_id: "u-large", width: 1280, height: 960, file_size: 120_000 },
			{ file_id: "photo-medium", file_unique_id: "u-medium", width: 320, height: 240, file_size: 15_872 },
		];
		const { message } = await userWrites(t, botA.token, botA.id, { chat_id: 1006, caption: "look at this", photo });
		const res = await t.api<MessageBody>("GET", `/messages/${message.id}`);
		expect(res.status).toBe(200);
		expect(res.body).toMatchObject({ type: "photo", text: null, caption: "look at this" });
		expect(res.body.media).toMatchObject({ file_id: "photo-large", width: 1280, height: 960 });
	});

	it("a reply carries Telegram's id of the message it answers", async () => {
		const original = await userWrites(t, botA.token, botA.id, { chat_id: 1007, text: "question" });
		const reply = await userWrites(t, botA.token, botA.id, { chat_id: 1007, text: "and a follow-up", reply_to_message: original.update.message });
		expect(reply.chatId).toBe(original.chatId);
		const res = await t.api<MessageBody>("GET", `/messages/${reply.message.id}`);
		expect(res.body).toMatchObject({ text: "and a follow-up", reply_to_message_id: original.update.message!.message_id });
		expect((await t.api<MessageBody>("GET", `/messages/${original.message.id}`)).body.reply_to_message_id).toBeNull();
	});

	it("GET /messages/:id needs can_read on the message's chat; an unknown id is 404", async () => {
		const { chatId, message } = await userWrites(t, botB.token, botB.id, { chat_id: 2002, text: "private words" });
		const reader = await createUser(t.gw, t.adminToken, ["viewer"]);
		const before = await rowCounts(t);
		const refused = await t.api("GET", `/messages/${message.id}`, undefined, reader.token);
		const error = expectApiError(refused, 403, "FORBIDDEN");
		expect(refused.text).not.toContain("private words");
		// Nor which chat the message is in (message ids can be walked).
		expect(error.message).not.toContain(String(chatId));
		expectApiError(await t.api("GET", "/messages/987654321"), 404, "NOT_FOUND");
		expect(await rowCounts(t)).toEqual(before);

		await grant(chatId, { user_id: reader.id, can_read: true });
		const allowed = await t.api<MessageBody>("GET", `/messages/${message.id}`, undefined, reader.token);
		expect(allowed.status).toBe(200);
		expect(allowed.body).toMatchObject({ id: message.id, text: "private words" });
		expect((await history(chatId, "", reader.token)).body.data.map((m) => m.id)).toEqual([message.id]);
		// Its grant is on this chat only.
		expectApiError(await history(chatA1, "", reader.token), 403, "FORBIDDEN");
	});

	it("a key scoped to chats:read, granted can_read, reads the chat but gets 403 on history and messages", async () => {
		const key = await createKey(t.baseUrl, t.adminToken, { scopes: ["chats:read"] });
		const { chatId, message } = await userWrites(t, botB.token, botB.id, { chat_id: 2003, text: "scoped" });
		// A narrowed key of the admin is not the admin: it reads what its grants allow.
		expect((await listChats("", key.key)).body).toEqual({ data: [], next_cursor: null });
		await grant(chatId, { api_key_id: key.id, can_read: true });
		const listed = await listChats("", key.key);
		expect(listed.status).toBe(200);
		expect(listed.body.data.map((c) => c.id)).toEqual([chatId]);
		expect((await t.api("GET", `/chats/${chatId}`, undefined, key.key)).status).toBe(200);
		const refused = await history(chatId, "", key.key);
		expectApiError(refused, 403, "FORBIDDEN");
		expect(refused.text).not.toContain('"scoped"');
		expectApiError(await t.api("GET", `/messages/${message.id}`, undefined, key.key), 403, "FORBIDDEN");
	});
});
