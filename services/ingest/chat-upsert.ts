/**
 * The chats of a batch of updates: each chat upserted once per batch with its latest description,
 * and a cache of committed chat ids that lets a batch skip chats whose details did not change.
 */
import type { Transaction } from "sequelize";
import type { Database } from "../../lib/db/connection";
import { all, placeholders, run, type SqlValue } from "../../lib/db/raw";
import { unixTimeOrNull } from "./message-content";
import { toDate } from "./message-store";
import type { IncomingUpdate } from "./store";
import type { ChatInfo, UpdateItem } from "./types";

/**
 * A chat id cache that lets a batch skip the upsert of chats whose details did not change. It only
 * ever holds committed rows, with the details the row holds (not those a batch offered, which an
 * older update loses to newer ones): an id learned inside a transaction goes in after the COMMIT, so
 * a concurrent batch never points a message at a chat row that may yet roll back.
 */
export type ChatCache = Map<string, ChatCacheEntry>;
export type ChatCacheEntry = { id: number; fingerprint: string; learnedAt: number };

/**
 * On MySQL other ingest nodes write chats too, and one may change a row this node's entry describes
 * (a group renamed to B there; renamed back to A here would match this node's stale "A" and be
 * skipped, leaving B): an entry is trusted that long only. SQLite has one node, the only writer.
 */
export const SHARED_CHAT_CACHE_TTL_MS = 5_000;

/** A chat is the bot's, by Telegram id and business connection ('' for the bot's own chats). */
export const chatKey = (botId: number, chat: { telegram_id: number; business_connection_id: string | null }) =>
	`${botId}:${chat.telegram_id}:${chat.business_connection_id ?? ""}`;
type ChatDetails = Pick<ChatInfo, "type" | "title" | "username" | "first_name" | "last_name" | "is_forum">;
const fingerprint = (chat: ChatDetails) => JSON.stringify([chat.type, chat.title, chat.username, chat.first_name, chat.last_name, Boolean(chat.is_forum)]);

/** A chat as one update describes it, and when Telegram saw it so (null: the update does not say). */
export interface ChatSeen {
	botId: number;
	chat: ChatInfo;
	at: Date | null;
}

/**
 * When the update saw the chat as it describes it: a message's date (an edit's edit_date), or the
 * `date` of the other kinds that have one (chat_member, chat_join_request, message_reaction, ...).
 */
function seenAt(item: UpdateItem): Date | null {
	if (item.message) return toDate(item.edit ? (item.message.edit_date ?? item.message.date) : item.message.date);
	// Range-checked as a message's date is: past what a Date holds, the insert threw inside the
	// batch's transaction and the bot's ingest stalled on that update for good.
	const date = unixTimeOrNull((item.payload as { date?: unknown } | null)?.date);
	return date !== null && date > 0 ? toDate(date) : null;
}

/** Of two descriptions of one chat, the later one (the second when neither is dated). */
function newer(a: ChatSeen | undefined, b: ChatSeen): boolean {
	return !a || a.at === null || (b.at !== null && b.at >= a.at);
}
export const MAX_CHAT_CACHE = 50_000;

/**
 * Keeps what a batch learned, the latest last; past `max` the chats learned longest ago go first.
 * The whole cache was cleared at the cap instead, so with more active chats than that every batch
 * after a clear upserted its chats again.
 */
export function rememberChats(cache: ChatCache, learned: Map<string, ChatCacheEntry>, max: number): void {
	for (const [key, entry] of learned) {
		cache.delete(key);
		cache.set(key, entry);
	}
	for (const key of cache.keys()) {
		if (cache.size <= max) break;
		cache.delete(key);
	}
}

/** One `(bot_id = ? AND <column> IN (...))` clause per bot: lookups that use the unique indexes. */
export function perBot(entries: Array<{ botId: number; id: number }>, column: string): { where: string; values: SqlValue[] } {
	const byBot = new Map<number, number[]>();
	for (const { botId, id } of entries) byBot.set(botId, [...(byBot.get(botId) ?? []), id]);
	const clauses: string[] = [];
	const values: SqlValue[] = [];
	for (const [botId, ids] of byBot) {
		clauses.push(`(bot_id = ? AND ${column} IN (${placeholders(ids.length)}))`);
		values.push(botId, ...ids);
	}
	return { where: clauses.join(" OR "), values };
}

/** Per chat, its latest description in these updates (a batch may hold a redelivery behind newer updates). */
export function latestChats(stored: IncomingUpdate[]): Map<string, ChatSeen> {
	const chats = new Map<string, ChatSeen>();
	for (const { botId, update } of stored) {
		for (const item of update.items) {
			if (!item.chat) continue;
			const key = chatKey(botId, item.chat);
			const seen = { botId, chat: item.chat, at: seenAt(item) };
			if (newer(chats.get(key), seen)) chats.set(key, seen);
		}
	}
	return chats;
}

/**
 * Inserts the batch's chats, or updates their details. Details are only overwritten by an update
 * not older than the one they came from (details_date): a push Telegram redelivers after newer ones
 * would otherwise roll a renamed group's title back. An undated update does not overwrite dated details.
 */
export async function upsertChats(
	db: Database,
	t: Transaction,
	chats: Map<string, ChatSeen>,
	cache: ChatCache,
	learned: Map<string, ChatCacheEntry>,
	now: Date,
): Promise<Map<string, number>> {
	const ids = new Map<string, number>();
	const changed: ChatSeen[] = [];
	const trustedSince = db.dialect === "sqlite" ? 0 : now.getTime() - SHARED_CHAT_CACHE_TTL_MS;
	for (const [key, entry] of chats) {
		const cached = cache.get(key);
		if (cached && cached.learnedAt >= trustedSince && cached.fingerprint === fingerprint(entry.chat)) ids.set(key, cached.id);
		else changed.push(entry);
	}
	if (changed.length === 0) return ids;

	const columns = "(bot_id, telegram_id, business_connection_id, type, title, username, first_name, last_name, is_forum, details_date, created_at, updated_at)";
	const tuple = `(${placeholders(12)})`;
	const values: SqlValue[] = changed.flatMap(({ botId, chat, at }) => [
		botId,
		chat.telegram_id,
		chat.business_connection_id ?? "",
		chat.type,
		chat.title,
		chat.username,
		chat.first_name,
		chat.last_name,
		chat.is_forum,
		at,
		now,
		now,
	]);
	// A chat object without a type ("unknown") never overwrites a type Telegram told us before. On
	// MySQL the assignments run in order and each sees the ones before: details_date goes last.
	const fresh = "(details_date IS NULL OR VALUES(details_date) >= details_date)";
	const ifFresh = (column: string) => `${column} = IF(${fresh}, VALUES(${column}), ${column})`;
	const upsert =
		db.dialect === "mysql"
			? `ON DUPLICATE KEY UPDATE type = IF(${fresh} AND VALUES(type) <> 'unknown', VALUES(type), type),
			   ${["title", "username", "first_name", "last_name", "is_forum", "updated_at", "details_date"].map(ifFresh).join(", ")}`
			: `ON CONFLICT (bot_id, telegram_id, business_connection_id) DO UPDATE SET type = CASE WHEN excluded.type = 'unknown' THEN chats.type ELSE excluded.type END,
			   title = excluded.title, username = excluded.username, first_name = excluded.first_name, last_name = excluded.last_name,
			   is_forum = excluded.is_forum, details_date = excluded.details_date, updated_at = excluded.updated_at
			   WHERE chats.details_date IS NULL OR excluded.details_date >= chats.details_date`;
	await run(db, t, `INSERT INTO chats ${columns} VALUES ${changed.map(() => tuple).join(", ")} ${upsert}`, values);

	const lookup = perBot(changed.map(({ botId, chat }) => ({ botId, id: chat.telegram_id })), "telegram_id");
	type ChatRow = ChatDetails & { id: number; bot_id: number; telegram_id: number; business_connection_id: string };
	const rows = await all<ChatRow>(
		db,
		t,
		`SELECT id, bot_id, telegram_id, business_connection_id, type, title, username, first_name, last_name, is_forum FROM chats WHERE ${lookup.where}`,
		lookup.values,
	);
	for (const row of rows) {
		const key = chatKey(Number(row.bot_id), { telegram_id: Number(row.telegram_id), business_connection_id: row.business_connection_id });
		ids.set(key, Number(row.id));
		if (chats.has(key)) learned.set(key, { id: Number(row.id), fingerprint: fingerprint(row), learnedAt: now.getTime() });
	}
	for (const { botId, chat } of changed) {
		// Never reached unless the upsert and the read disagree; an event without its chat would be lost.
		if (!ids.has(chatKey(botId, chat))) throw new Error(`chat ${chat.telegram_id} of bot ${botId} not found after its upsert`);
	}
	return ids;
}

/** A group's service message saying it became a supergroup marks the group's row. */
export async function recordMigrations(db: Database, t: Transaction, stored: IncomingUpdate[]): Promise<void> {
	for (const { botId, update } of stored) {
		for (const item of update.items) {
			if (item.message && item.migrate_to_chat_id !== null) {
				await run(db, t, "UPDATE chats SET migrated_to_chat_id = ? WHERE bot_id = ? AND telegram_id = ? AND business_connection_id = ?", [
					item.migrate_to_chat_id,
					botId,
					item.chat.telegram_id,
					item.chat.business_connection_id ?? "",
				]);
			}
		}
	}
}

/**
 * Clears the chat cache entries of a batch that failed: a cached id whose row is gone (its bot
 * deleted) must not fail the batch again when Telegram redelivers it.
 */
export function forgetChats(cache: ChatCache, items: IncomingUpdate[]): void {
	for (const { botId, update } of items) for (const item of update.items) if (item.chat) cache.delete(chatKey(botId, item.chat));
}
