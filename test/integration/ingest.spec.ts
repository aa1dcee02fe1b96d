import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { QueryTypes } from "sequelize";
import { startTelegramGateway, type TelegramGateway } from "../support/telegram-gateway";

const CORPUS = join(__dirname, "..", "..", "..", "shared", "telegram-updates");

interface Event {
	type: string;
	seq: number;
	bot_id: number;
	chat_id: number | null;
	update_kind?: string;
	message?: { id: number; seq: number; text: string | null; type: string; telegram_message_id: number; edit_date: string | null; reply_to_message_id: number | null };
}

describe("ingest over the webhook", () => {
	let t: TelegramGateway;
	let token: string;
	let botId: number;
	let path: string;
	let secret: string;

	const count = async (table: string) =>
		Number((await t.gw.runtime.db.sequelize.query<{ n: number }>(`SELECT COUNT(*) AS n FROM ${table}`, { type: QueryTypes.SELECT }))[0]!.n);
	const push = (body: string | object, headers: Record<string, string> = { "x-telegram-bot-api-secret-token": secret }, to = path) =>
		fetch(`${t.baseUrl}/api/v1/telegram/webhook/${to}`, {
			method: "POST",
			headers: { "content-type": "application/json", ...headers },
			body: typeof body === "string" ? body : JSON.stringify(body),
		});
	const events = () => t.events as unknown as Event[];
	const delivered = () => t.telegram.waitFor(() => t.telegram.pendingUpdates(token).length === 0, 10_000);

	beforeAll(async () => {
		t = await startTelegramGateway({ mode: "webhook", env: { LOG_LEVEL: "warn" } });
		const added = await t.addBot();
		token = added.token;
		botId = added.bot.id;
		path = added.bot.webhook_url!.split("/").pop()!;
		secret = t.telegram.bot(token).webhook!.secret_token!;
	});
	afterAll(() => t.stop());

	it("a user's text message is stored once, with its chat, and published as new_message", async () => {
		const update = t.telegram.userSends(token, { chat_id: 1001, text: "hello", from: { first_name: "Ann", username: "ann" } });
		await delivered();
		const event = events().find((e) => e.message?.telegram_message_id === update.message!.message_id)!;
		expect(event).toMatchObject({ type: "new_message", bot_id: botId, message: { type: "text", text: "hello" } });
		const chat = await t.api<{ telegram_id: number; type: string; first_name: string }>("GET", `/chats/${event.chat_id}`);
		expect(chat.body).toMatchObject({ telegram_id: 1001, type: "private" });
		// Telegram got its 2xx only after the commit: the row is there.
		expect(await t.gw.runtime.db.models.TelegramUpdate.count({ where: { bot_id: botId, update_id: update.update_id } })).toBe(1);
	});

	it("media, replies, edits (history kept), callback queries and membership changes", async () => {
		const first = t.telegram.userSends(token, { chat_id: 1002, text: "original" });
		const photo = t.telegram.userSends(token, {
			chat_id: 1002,
			caption: "a photo",
			photo: [
				{ file_id: "small", file_unique_id: "s", width: 90, height: 90, file_size: 1 },
				{ file_id: "large", file_unique_id: "l", width: 800, height: 600, file_size: 9 },
			],
		});
		const reply = t.telegram.userSends(token, { chat_id: 1002, text: "a reply", reply_to_message: first.message });
		await delivered();
		t.telegram.userEdits(token, { chat_id: 1002, message_id: first.message!.message_id, text: "edited" });
		t.telegram.userClicks(token, { chat_id: 1002, message_id: first.message!.message_id, data: "btn:1" });
		t.telegram.memberJoins(token, { chat_id: -100777, user_id: 5 });
		await delivered();

		// Telegram's message ids count per chat: look them up within chat 1002.
		const chatId = events().find((e) => e.message?.text === "original")!.chat_id;
		const byTelegramId = (id: number, type = "new_message") =>
			events().find((e) => e.type === type && e.chat_id === chatId && e.message?.telegram_message_id === id)!;
		expect(byTelegramId(photo.message!.message_id).message).toMatchObject({ type: "photo", media: expect.objectContaining({ file_id: "large" }) });
		expect(byTelegramId(reply.message!.message_id).message!.reply_to_message_id).toBe(first.message!.message_id);
		const original = byTelegramId(first.message!.message_id);
		const edit = byTelegramId(first.message!.message_id, "edited_message");
		expect(edit.message).toMatchObject({ id: original.message!.id, seq: original.message!.seq, text: "edited" });
		expect(edit.seq).toBeGreaterThan(original.seq);
		const history = await t.gw.runtime.db.models.MessageEdit.findAll({ where: { message_id: original.message!.id }, raw: true });
		expect(history.map((h) => h.text)).toEqual(["edited"]);
		expect(events().some((e) => e.type === "update" && e.update_kind === "callback_query" && e.chat_id === original.chat_id)).toBe(true);
		expect(events().some((e) => e.type === "update" && e.update_kind === "chat_member" && e.chat_id !== null)).toBe(true);
	});

	it("the same update_id twice is stored once and answered 200 both times", async () => {
		const update = { update_id: 5_000_001, message: { message_id: 9, date: 1_700_000_000, chat: { id: 1003, type: "private", first_name: "D" }, text: "dup" } };
		const before = await count("events");
		const [a, b] = await Promise.all([push(update), push(update)]);
		expect([a.status, b.status]).toEqual([200, 200]);
		const c = await push(update);
		expect(await c.json()).toEqual({ ok: true, duplicate: true });
		expect(await count("events")).toBe(before + 1);
		expect(await t.gw.runtime.db.models.TelegramUpdate.count({ where: { bot_id: botId, update_id: 5_000_001 } })).toBe(1);
	});

	it("a wrong or missing secret is 401 and nothing is stored", async () => {
		const before = await count("telegram_updates");
		const update = { update_id: 5_000_002, message: { message_id: 1, date: 1, chat: { id: 1, type: "private" }, text: "x" } };
		const wrong = await push(update, { "x-telegram-bot-api-secret-token": "x".repeat(64) });
		const missing = await push(update, {});
		expect([wrong.status, missing.status]).toEqual([401, 401]);
		expect(await wrong.json()).toMatchObject({ error: { code: "UNAUTHORIZED" } });
		expect(await count("telegram_updates")).toBe(before);
	});

	it("malformed JSON is 400, an over-1 MB body 413, an unknown path 404, a body without update_id 400 naming it", async () => {
		const before = await count("telegram_updates");
		expect((await push('{"update_id": 1, "message": {')).status).toBe(400);
		expect((await push(JSON.stringify({ update_id: 7, message: { text: "x".repeat(1_100_000) } }))).status).toBe(413);
		expect((await push({ update_id: 1 }, undefined, "f".repeat(64))).status).toBe(404);
		expect((await push({ update_id: 1 }, undefined, "../../etc")).status).toBe(404);
		const noId = await push({ message: {} });
		expect(noId.status).toBe(400);
		expect(await noId.json()).toMatchObject({ error: { code: "VALIDATION_ERROR", details: { fields: [{ field: "update_id" }] } } });
		const deep = await push(`{"update_id": 8, "x": ${"[".repeat(5_000)}${"]".repeat(5_000)}}`);
		expect(deep.status).toBe(400);
		expect(await count("telegram_updates")).toBe(before);
	});

	it("a kind the gateway does not know is stored raw and published as update", async () => {
		const res = await push({ update_id: 5_000_003, brand_new_kind: { some_field: 1 } });
		expect(res.status).toBe(200);
		// `update` is the raw update, as Telegram sent it.
		expect(events().find((e) => e.update_kind === "brand_new_kind")).toMatchObject({
			type: "update",
			chat_id: null,
			update: { update_id: 5_000_003, brand_new_kind: { some_field: 1 } },
		});
	});

	it("every update of the shared corpus (146, each with a fresh update_id) is accepted with 2xx, stored and published, with no error logged", async () => {
		const files = readdirSync(CORPUS).filter((f) => f.endsWith(".json") && f !== "MANIFEST.json");
		expect(files).toHaveLength(146);
		const errors = jest.spyOn(console, "error");
		const updatesBefore = await count("telegram_updates");
		const publishedBefore = events().length;
		let updateId = 7_000_000;
		const failures: string[] = [];
		for (const file of files) {
			const update = JSON.parse(readFileSync(join(CORPUS, file), "utf8")) as Record<string, unknown>;
			update.update_id = updateId++;
			const res = await push(update);
			if (res.status !== 200) failures.push(`${file}: ${res.status} ${await res.text()}`);
		}
		expect(failures).toEqual([]);
		expect(await count("telegram_updates")).toBe(updatesBefore + 146);
		// One event per kind an update carries (the multi-kind fixture carries five).
		await t.telegram.waitFor(() => events().length >= publishedBefore + 150, 5_000);
		expect(events().length - publishedBefore).toBe(150);
		expect(errors).not.toHaveBeenCalled();
		errors.mockRestore();
	});
});

describe("ingest on a node of its own: pushes travel from the api node in batches", () => {
	let r: TelegramGateway;
	let path: string;
	let secret: string;

	const count = async (table: string) =>
		Number((await r.gw.runtime.db.sequelize.query<{ n: number }>(`SELECT COUNT(*) AS n FROM ${table}`, { type: QueryTypes.SELECT }))[0]!.n);
	const push = (body: object, headers: Record<string, string> = { "x-telegram-bot-api-secret-token": secret }, to = path) =>
		fetch(`${r.baseUrl}/api/v1/telegram/webhook/${to}`, { method: "POST", headers: { "content-type": "application/json", ...headers }, body: JSON.stringify(body) });

	beforeAll(async () => {
		r = await startTelegramGateway({ mode: "webhook", env: { LOG_LEVEL: "warn" }, nodes: [["api", "auth", "bots", "chats", "broker"], ["ingest"]] });
		const added = await r.addBot();
		path = added.bot.webhook_url!.split("/").pop()!;
		secret = r.telegram.bot(added.token).webhook!.secret_token!;
	});
	afterAll(() => r.stop());

	it("pushes that arrive together go to ingest in shared calls, and each gets its own answer", async () => {
		const before = await count("telegram_updates");
		const receiveBatch = jest.spyOn(r.gw.broker, "call");
		const text = (id: number) => ({ update_id: id, message: { message_id: id, date: 1_700_000_000, chat: { id: 1004, type: "private", first_name: "B" }, text: `batch ${id}` } });
		try {
			const answers = await Promise.all([
				...Array.from({ length: 20 }, (_, i) => push(text(5_100_000 + i))),
				...Array.from({ length: 4 }, (_, i) => push(text(5_100_100 + i), { "x-telegram-bot-api-secret-token": "x".repeat(64) })),
				// A header longer than any secret must not fail the pushes sharing its call.
				push(text(5_100_200), { "x-telegram-bot-api-secret-token": "x".repeat(5_000) }),
				...Array.from({ length: 3 }, (_, i) => push(text(5_100_300 + i), undefined, "e".repeat(64))),
				push({ message: {} }),
			]);
			const statuses = answers.map((a) => a.status);
			expect(statuses).toEqual([...Array<number>(20).fill(200), 401, 401, 401, 401, 401, 404, 404, 404, 400]);
			expect(await answers[0]!.json()).toEqual({ ok: true });
			expect(await answers.at(-1)!.json()).toMatchObject({ error: { code: "VALIDATION_ERROR", details: { fields: [{ field: "update_id" }] } } });
			const calls = receiveBatch.mock.calls.filter(([action]) => action === "ingest.receiveBatch").length;
			expect(calls).toBeGreaterThan(0);
			expect(calls).toBeLessThan(answers.length);
		} finally {
			receiveBatch.mockRestore();
		}
		expect(await count("telegram_updates")).toBe(before + 20);
	});

	it("a push alone goes at once and is answered after its commit", async () => {
		const before = await count("telegram_updates");
		const res = await push({ update_id: 5_200_000, message: { message_id: 1, date: 1_700_000_000, chat: { id: 1005, type: "private", first_name: "A" }, text: "alone" } });
		expect(res.status).toBe(200);
		expect(await res.json()).toEqual({ ok: true });
		expect(await count("telegram_updates")).toBe(before + 1);
	});
});
