/**
 * De-duplication of Telegram updates lasts TELEGRAM_UPDATE_RETENTION_HOURS (72 by default), not for
 * ever. Telegram pushes an update again only while it keeps it (at most 24 hours, Bot API
 * getUpdates), and after a week without updates it picks the next update_id at random (Bot API,
 * Update.update_id): an update_id first stored before the window is then a new update, stored and
 * published, not acknowledged and dropped. Whether the hourly prune has removed the old row yet
 * makes no difference. Time is moved by backdating the stored rows.
 */
import { QueryTypes } from "sequelize";
import type { Database } from "../../lib/db/connection";
import { normalizeUpdate } from "../../services/ingest/normalize";
import { storeUpdates, type IncomingUpdate } from "../../services/ingest/store";
import { insertBot, migratedDatabase } from "../support/database";
import { eventually } from "../support/receivers";
import { startTelegramGateway, type TelegramGateway } from "../support/telegram-gateway";

const HOUR_MS = 60 * 60_000;

/** Makes the stored row of (bot, update_id) look received that long ago. */
async function backdate(db: Database, botId: number, updateId: number, agoMs: number): Promise<void> {
	await db.sequelize.query("UPDATE telegram_updates SET received_at = ? WHERE bot_id = ? AND update_id = ?", { replacements: [new Date(Date.now() - agoMs), botId, updateId] });
}

describe("storeUpdates: the de-duplication window", () => {
	let db: Database;
	let botId: number;
	const WINDOW_MS = 72 * HOUR_MS;

	beforeAll(async () => {
		db = await migratedDatabase();
		botId = (await insertBot(db)).id;
	});
	afterAll(() => db.close());

	const incoming = (updateId: number, messageId: number, text: string): IncomingUpdate => {
		const body = { update_id: updateId, message: { message_id: messageId, date: 1_700_000_000, chat: { id: 77, type: "private", first_name: "Ann" }, text } };
		return { botId, update: normalizeUpdate(body), raw: JSON.stringify(body) };
	};
	const store = (items: IncomingUpdate[]) => storeUpdates(db, items, new Map(), { dedupWindowMs: WINDOW_MS });
	const updateRowOf = async (text: string) => {
		const [row] = await db.sequelize.query<{ update_row_id: number | null }>("SELECT update_row_id FROM messages WHERE bot_id = ? AND text = ?", { replacements: [botId, text], type: QueryTypes.SELECT });
		return row?.update_row_id ?? null;
	};

	it("an update_id stored within the window is a redelivery: acknowledged, stored once", async () => {
		expect((await store([incoming(1, 1, "first")])).duplicates).toEqual([false]);
		await backdate(db, botId, 1, WINDOW_MS - HOUR_MS);
		expect(await store([incoming(1, 1, "first")])).toEqual({ duplicates: [true], events: [] });
	});

	it("an update_id stored before the window is a new update: stored and published; the old message stays", async () => {
		await store([incoming(2, 2, "long ago")]);
		await backdate(db, botId, 2, WINDOW_MS + HOUR_MS);
		// The same id again, in a batch with a redelivery and a fresh update.
		await store([incoming(3, 3, "recent")]);
		const result = await store([incoming(3, 3, "recent"), incoming(2, 50, "today"), incoming(4, 4, "fresh")]);
		expect(result.duplicates).toEqual([true, false, false]);
		expect(result.events.map((e) => e.message?.text)).toEqual(["today", "fresh"]);
		expect(await updateRowOf("long ago")).toBeNull();
		expect(await updateRowOf("today")).toEqual(expect.any(Number));
		// And it is de-duplicated from now on, for a window of its own.
		expect((await store([incoming(2, 50, "today")])).duplicates).toEqual([true]);
	});
});

describe("ingest through the gateway: the de-duplication window", () => {
	let t: TelegramGateway;
	let token: string;
	let botId: number;

	const texts = async () =>
		(await t.gw.runtime.db.sequelize.query<{ text: string }>("SELECT text FROM messages WHERE bot_id = ? ORDER BY id", { replacements: [botId], type: QueryTypes.SELECT })).map((r) => r.text);
	const delivered = () => t.telegram.waitFor(() => t.telegram.pendingUpdates(token).length === 0, 10_000);

	beforeAll(async () => {
		t = await startTelegramGateway({ mode: "webhook", env: { LOG_LEVEL: "warn" } });
		const added = await t.addBot();
		token = added.token;
		botId = added.bot.id;
	});
	afterAll(() => t.stop());

	it("a true redelivery (the same update_id, two days later) is still stored once", async () => {
		const first = t.telegram.userSends(token, { chat_id: 4242, text: "once" });
		await delivered();
		await backdate(t.gw.runtime.db, botId, first.update_id, 48 * HOUR_MS);
		t.telegram.enqueueUpdate(token, { ...first });
		await delivered();
		expect((await texts()).filter((x) => x === "once")).toHaveLength(1);
	});

	it("an update_id last seen weeks ago is a new update (Telegram restarts ids at random after a quiet week): stored", async () => {
		const old = t.telegram.userSends(token, { chat_id: 4243, text: "weeks ago" });
		await delivered();
		expect(await texts()).toContain("weeks ago");
		// The stored update is 30 days old, as the gateway would hold it after a month without pruning.
		await backdate(t.gw.runtime.db, botId, old.update_id, 30 * 24 * HOUR_MS);
		// The bot was quiet for over a week; Telegram's next update_id happens to be that old one.
		t.telegram.enqueueUpdate(token, {
			update_id: old.update_id,
			message: {
				message_id: 987_654,
				date: Math.floor(Date.now() / 1000),
				chat: { id: 4244, type: "private", first_name: "Bea" },
				from: { id: 4244, is_bot: false, first_name: "Bea" },
				text: "a new message today",
			},
		} as never);
		await delivered();
		expect(await texts()).toEqual(expect.arrayContaining(["weeks ago", "a new message today"]));
		await eventually(() => t.events.some((e) => (e.message as { text?: string } | undefined)?.text === "a new message today"), 5_000, "its new_message event");
	});
});
