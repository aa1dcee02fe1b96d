/** A migrated database for tests that need tables but no broker. */
import { QueryTypes } from "sequelize";
import { openDatabase, type Database } from "../../lib/db/connection";
import { migrateUp } from "../../lib/db/migrator";
import type { EventDraft } from "../../services/broker/event-log";

/** The event log's counters (`sequences`), by name. */
export async function sequenceCounters(db: Database): Promise<Record<string, number>> {
	const rows = await db.sequelize.query<{ name: string; value: number | string }>("SELECT name, value FROM sequences ORDER BY name", { type: QueryTypes.SELECT });
	return Object.fromEntries(rows.map((r) => [r.name, Number(r.value)]));
}

export async function migratedDatabase(url = "sqlite::memory:"): Promise<Database> {
	const db = await openDatabase(url);
	await migrateUp(db);
	return db;
}

let counter = 0;

/** Inserts a bot row directly (the bots service is not needed to test storage). */
export async function insertBot(db: Database, overrides: Partial<{ telegram_id: number; username: string; mode: "webhook" | "polling" }> = {}) {
	counter += 1;
	return db.models.Bot.create({
		telegram_id: overrides.telegram_id ?? 900_000 + counter,
		username: overrides.username ?? `test_${counter}_bot`,
		display_name: null,
		description: null,
		token_ciphertext: "unused",
		webhook_secret_ciphertext: "unused",
		key_id: "test",
		webhook_path: `${counter}`.padStart(64, "0"),
		mode: overrides.mode ?? "webhook",
		last_error: null,
		created_by_user_id: null,
	});
}

export async function insertChat(db: Database, botId: number, telegramId: number, type = "private") {
	return db.models.Chat.create({
		bot_id: botId,
		telegram_id: telegramId,
		type,
		title: type === "private" ? null : `chat ${telegramId}`,
		username: null,
		first_name: type === "private" ? "Test" : null,
		last_name: null,
		migrated_to_chat_id: null,
	});
}

/** An `update` event for the log, carrying `text`. */
export function updateDraft(botId: number, chatId: number | null, text: string): EventDraft {
	return {
		type: "update",
		bot_id: botId,
		chat_id: chatId,
		message_id: null,
		payload: () => ({ type: "update", bot_id: botId, chat_id: chatId, update: { text } }),
	};
}
