/**
 * Stores a batch of Telegram updates in one transaction: each (bot, update_id) once, its chats
 * upserted, its messages stored or edited (edits keep their history), and one event per item in the
 * event log. Returns, per update, whether it was a duplicate, and the events to publish once the
 * transaction has committed.
 */
import { randomBytes } from "node:crypto";
import type { Transaction } from "sequelize";
import type { Database } from "../../lib/db/connection";
import { all, insertReturning, insertRows, placeholders, run, type SqlValue } from "../../lib/db/raw";
import { TELEGRAM_UPDATE_RETENTION_HOURS } from "../../lib/config";
import { isDbConflict } from "../../lib/errors";
import { allocateSeqs, insertEvents, releaseSeqs, type EventDraft, type GatewayEvent } from "../broker/event-log";
import { messageView, type MessageRow } from "../chats/views";
import type { ChatInfo, MessageInfo, NormalizedUpdate, UpdateItem } from "./types";

export interface IncomingUpdate {
	botId: number;
	update: NormalizedUpdate;
	/** The update as received, stored verbatim. */
	raw: string;
}

export interface StoreResult {
	/** Per incoming update, in order: true when (bot, update_id) was already stored. */
	duplicates: boolean[];
	events: GatewayEvent[];
}

export interface StoreOptions {
	/** Long polling: move the bot's stored offset in the same transaction as the updates. */
	pollingOffset?: { botId: number; offset: number };
	/**
	 * How long a stored update counts for de-duplication (TELEGRAM_UPDATE_RETENTION_HOURS): the same
	 * (bot, update_id) stored longer ago is a new update, stored in place of the old row.
	 */
	dedupWindowMs?: number;
}

const DEFAULT_DEDUP_WINDOW_MS = TELEGRAM_UPDATE_RETENTION_HOURS.default * 3_600_000;


/**
 * A chat id cache that lets a batch skip the upsert of chats whose details did not change. It only
 * ever holds committed rows, with the details the row holds (not those a batch offered, which an
 * older update loses to newer ones): an id learned inside a transaction goes in after the COMMIT, so
 * a concurrent batch never points a message at a chat row that may yet roll back.
 */
export type ChatCache = Map<string, ChatCacheEntry>;
type ChatCacheEntry = { id: number; fingerprint: string; learnedAt: number };

/**
 * On MySQL other ingest nodes write chats too, and one may change a row this node's entry describes
 * (a group renamed to B there; renamed back to A here would match this node's stale "A" and be
 * skipped, leaving B): an entry is trusted that long only. SQLite has one node, the only writer.
 */
export const SHARED_CHAT_CACHE_TTL_MS = 5_000;

/** A chat is the bot's, by Telegram id and business connection ('' for the bot's own chats). */
const chatKey = (botId: number, chat: { telegram_id: number; business_connection_id: string | null }) =>
	`${botId}:${chat.telegram_id}:${chat.business_connection_id ?? ""}`;
type ChatDetails = Pick<ChatInfo, "type" | "title" | "username" | "first_name" | "last_name" | "is_forum">;
const fingerprint = (chat: ChatDetails) => JSON.stringify([chat.type, chat.title, chat.username, chat.first_name, chat.last_name, Boolean(chat.is_forum)]);

/** A chat as one update describes it, and when Telegram saw it so (null: the update does not say). */
interface ChatSeen {
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
	const date = (item.payload as { date?: unknown } | null)?.date;
	return typeof date === "number" && Number.isSafeInteger(date) && date > 0 ? toDate(date) : null;
}

/** Of two descriptions of one chat, the later one (the second when neither is dated). */
function newer(a: ChatSeen | undefined, b: ChatSeen): boolean {
	return !a || a.at === null || (b.at !== null && b.at >= a.at);
}
const MAX_CHAT_CACHE = 50_000;

function toDate(unixSeconds: number | null): Date | null {
	return unixSeconds === null ? null : new Date(unixSeconds * 1000);
}

const UPDATE_COLUMNS = ["bot_id", "update_id", "kind", "payload", "batch_id", "received_at"] as const;

/** One `(bot_id = ? AND <column> IN (...))` clause per bot: lookups that use the unique indexes. */
function perBot(entries: Array<{ botId: number; id: number }>, column: string): { where: string; values: SqlValue[] } {
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

/** Bot, then update_id: the order every transaction inserts (and so locks) its updates in. */
const byUpdateKey = (a: IncomingUpdate, b: IncomingUpdate) => a.botId - b.botId || a.update.update_id - b.update.update_id;

async function insertUpdates(db: Database, t: Transaction, fresh: IncomingUpdate[], batchId: string, now: Date): Promise<Map<string, number>> {
	// Two batches holding some of the same updates (Telegram redelivering to another node) lock them in
	// one order, so on MySQL neither waits for a row the other holds while holding one it wants.
	const rows = [...fresh].sort(byUpdateKey).map((item) => [item.botId, item.update.update_id, item.update.primary_kind.slice(0, 64), item.raw, batchId, now]);
	const key = (r: { bot_id: number; update_id: number }) => `${Number(r.bot_id)}:${Number(r.update_id)}`;
	// Which rows did this batch insert? Those that carry its batch_id: MariaDB returns the duplicates too.
	type Inserted = { id: number; bot_id: number; update_id: number; batch_id: string };
	const ours = (found: Inserted[]) => new Map(found.filter((r) => r.batch_id === batchId).map((r) => [key(r), Number(r.id)]));
	if (db.returning) {
		return ours(await insertReturning<Inserted>(db, t, "telegram_updates", UPDATE_COLUMNS, rows, "id, bot_id, update_id, batch_id", { ignoreDuplicates: true }));
	}
	await insertRows(db, t, "telegram_updates", UPDATE_COLUMNS, rows, { ignoreDuplicates: true });
	const lookup = perBot(fresh.map((item) => ({ botId: item.botId, id: item.update.update_id })), "update_id");
	const found = await all<Inserted>(
		db,
		t,
		`SELECT id, bot_id, update_id, batch_id FROM telegram_updates WHERE batch_id = ? AND (${lookup.where})`,
		[batchId, ...lookup.values],
	);
	return ours(found);
}

/**
 * Removes the stored rows of these updates that were received before `before`, and says how many.
 * Telegram pushes an update again for 24 hours at most, and after a week without updates may pick
 * update_ids at random: an id stored before the window is a new update that reuses it, not a
 * redelivery, whether or not the hourly prune (services/ingest/retention.ts) has removed it yet.
 */
async function forgetExpiredUpdates(db: Database, t: Transaction, items: IncomingUpdate[], before: Date): Promise<number> {
	const lookup = perBot(items.map((item) => ({ botId: item.botId, id: item.update.update_id })), "update_id");
	// A plain read first, which locks nothing: on MySQL a DELETE by this condition could lock rows
	// that concurrent batches are inserting, and redeliveries (the usual duplicates) expire nothing.
	const expired = await all<{ id: number }>(db, t, `SELECT id FROM telegram_updates WHERE received_at < ? AND (${lookup.where})`, [before, ...lookup.values]);
	if (expired.length === 0) return 0;
	const ids = expired.map((row) => Number(row.id));
	const result = await run(db, t, `DELETE FROM telegram_updates WHERE id IN (${placeholders(ids.length)}) AND received_at < ?`, [...ids, before]);
	return result.changes;
}

/**
 * Inserts the batch's chats, or updates their details. Details are only overwritten by an update
 * not older than the one they came from (details_date): a push Telegram redelivers after newer ones
 * would otherwise roll a renamed group's title back. An undated update does not overwrite dated details.
 */
async function upsertChats(
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

function messageColumns(message: MessageInfo) {
	return {
		type: message.type,
		text: message.text,
		caption: message.caption,
		entities: message.entities ? JSON.stringify(message.entities) : null,
		media: message.media ? JSON.stringify(message.media) : null,
		edit_date: toDate(message.edit_date),
	};
}

interface Planned {
	seq: number;
	botId: number;
	chatId: number | null;
	item: UpdateItem;
	updateRowId: number;
	/** The update as Telegram sent it (what `update` events carry). */
	raw: string;
}

/**
 * Clears the chat cache entries of a batch that failed: a cached id whose row is gone (its bot
 * deleted) must not fail the batch again when Telegram redelivers it.
 */
function forgetChats(cache: ChatCache, items: IncomingUpdate[]): void {
	for (const { botId, update } of items) for (const item of update.items) if (item.chat) cache.delete(chatKey(botId, item.chat));
}

/** A batch as storeUpdates receives it, with what its transaction needs to know beforehand. */
interface BatchPlan {
	batch: IncomingUpdate[];
	/** The first occurrence of each (bot, update_id): the same update twice in one batch is stored once. */
	firstIndex: Map<string, number>;
	fresh: IncomingUpdate[];
	freshItems: number;
	now: Date;
	/** A stored update received before this is forgotten: the same update_id is new again. */
	forgetBefore: Date;
}

const itemsOf = (items: IncomingUpdate[]) => items.reduce((n, s) => n + s.update.items.length, 0);
const updateKey = (item: IncomingUpdate) => `${item.botId}:${item.update.update_id}`;

/** How often a batch rolled back by a MySQL deadlock or lock wait timeout is run again. */
const CONFLICT_ATTEMPTS = 3;

export async function storeUpdates(db: Database, batch: IncomingUpdate[], cache: ChatCache, options: StoreOptions = {}): Promise<StoreResult> {
	const firstIndex = new Map<string, number>();
	batch.forEach((item, i) => {
		if (!firstIndex.has(updateKey(item))) firstIndex.set(updateKey(item), i);
	});
	const fresh = [...firstIndex.values()].map((i) => batch[i]!);
	const now = new Date();
	const forgetBefore = new Date(now.getTime() - (options.dedupWindowMs ?? DEFAULT_DEDUP_WINDOW_MS));
	const plan: BatchPlan = { batch, firstIndex, fresh, freshItems: itemsOf(fresh), now, forgetBefore };
	for (let attempt = 1; ; attempt++) {
		const learned = new Map<string, ChatCacheEntry>();
		try {
			const result = await storeOnce(db, plan, cache, learned, options);
			if (cache.size + learned.size > MAX_CHAT_CACHE) cache.clear();
			for (const [key, entry] of learned) cache.set(key, entry);
			return result;
		} catch (err) {
			if (attempt >= CONFLICT_ATTEMPTS || !isDbConflict(err)) {
				forgetChats(cache, batch);
				throw err;
			}
		}
	}
}

function storeOnce(db: Database, plan: BatchPlan, cache: ChatCache, learned: Map<string, ChatCacheEntry>, options: StoreOptions): Promise<StoreResult> {
	const { batch, firstIndex, fresh, freshItems, now, forgetBefore } = plan;
	const batchId = randomBytes(12).toString("hex");
	// Read committed (MySQL): the chats and messages read after the wait for the sequence lock include
	// what other batches committed meanwhile. Under REPEATABLE READ the snapshot, taken at the first
	// read before that wait, missed a chat whose upsert here changed nothing, and MariaDB with
	// innodb_snapshot_isolation refuses to write past such a snapshot at all.
	return db.rawTransaction(async (t) => {
		// SQLite has one writer, so nobody waits on the sequence row: seqs for every fresh item are
		// taken in the same trip as the insert (a statement less to wait for), and those of updates
		// that turn out to be stored already are handed back below. On MySQL the sequence row's lock
		// holds every other writer of the log until this commits: it is taken only once the updates
		// are in, for exactly the items stored, and before any other row is locked (chats, messages),
		// so a transaction holding it never waits for one that is waiting for it.
		const early = db.dialect === "sqlite";
		const [inserted, earlySeq] = await Promise.all([
			fresh.length > 0 ? insertUpdates(db, t, fresh, batchId, now) : new Map<string, number>(),
			early && freshItems > 0 ? allocateSeqs(db, t, freshItems) : 0,
		]);
		// Found stored already: a redelivery, unless stored before the window (then stored anew).
		const seenBefore = fresh.filter((item) => !inserted.has(updateKey(item)));
		if (seenBefore.length > 0 && (await forgetExpiredUpdates(db, t, seenBefore, forgetBefore)) > 0) {
			for (const [key, id] of await insertUpdates(db, t, seenBefore, batchId, now)) inserted.set(key, id);
		}
		const stored = fresh.filter((item) => inserted.has(updateKey(item)));
		const duplicates = batch.map((item, i) => firstIndex.get(updateKey(item)) !== i || !inserted.has(updateKey(item)));
		const itemCount = itemsOf(stored);
		let firstSeq = earlySeq;
		if (early && itemCount < freshItems) await releaseSeqs(db, t, freshItems - itemCount);
		if (!early && itemCount > 0) firstSeq = await allocateSeqs(db, t, itemCount);

		// Per chat, its latest description in the batch (a batch may hold a redelivery behind newer updates).
		const chats = new Map<string, ChatSeen>();
		for (const { botId, update } of stored) {
			for (const item of update.items) {
				if (!item.chat) continue;
				const key = chatKey(botId, item.chat);
				const seen = { botId, chat: item.chat, at: seenAt(item) };
				if (newer(chats.get(key), seen)) chats.set(key, seen);
			}
		}
		const chatIds = chats.size > 0 ? await upsertChats(db, t, chats, cache, learned, now) : new Map<string, number>();
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

		if (itemCount > 0) {
			const planned: Planned[] = [];
			for (const incoming of stored) {
				const { botId, update, raw } = incoming;
				const updateRowId = inserted.get(updateKey(incoming))!;
				for (const item of update.items) {
					const chatId = item.chat ? (chatIds.get(chatKey(botId, item.chat)) ?? null) : null;
					planned.push({ seq: firstSeq + planned.length, botId, chatId, item, updateRowId, raw });
				}
			}
			const messages = await storeMessages(db, t, planned, now);
			const drafts: EventDraft[] = planned.map((p) => draftFor(p, messages.get(p.seq)));
			const events = await insertEvents(db, t, firstSeq, drafts, now);
			await movePollingOffset(db, t, options);
			return { duplicates, events };
		}
		await movePollingOffset(db, t, options);
		return { duplicates, events: [] };
	}, { readCommitted: true });
}

async function movePollingOffset(db: Database, t: Transaction, options: StoreOptions): Promise<void> {
	if (!options.pollingOffset) return;
	const { botId, offset } = options.pollingOffset;
	await run(db, t, "UPDATE bots SET polling_offset = ? WHERE id = ? AND polling_offset < ?", [offset, botId, offset]);
}

const MESSAGE_COLUMNS = [
	"seq",
	"bot_id",
	"chat_id",
	"telegram_message_id",
	"direction",
	"type",
	"text",
	"caption",
	"entities",
	"media",
	"from_telegram_id",
	"from_username",
	"from_first_name",
	"from_last_name",
	"from_is_bot",
	"reply_to_message_id",
	"thread_id",
	"media_group_id",
	"date",
	"edit_date",
	"update_row_id",
	"created_at",
	"updated_at",
] as const;

type MessageRecord = Record<(typeof MESSAGE_COLUMNS)[number], SqlValue>;

function messageRecord(p: Planned & { chatId: number }, message: MessageInfo, now: Date): MessageRecord {
	const content = messageColumns(message);
	return {
		seq: p.seq,
		bot_id: p.botId,
		chat_id: p.chatId,
		telegram_message_id: message.telegram_message_id,
		direction: "incoming",
		type: content.type,
		text: content.text,
		caption: content.caption,
		entities: content.entities,
		media: content.media,
		from_telegram_id: message.from?.telegram_id ?? null,
		from_username: message.from?.username ?? null,
		from_first_name: message.from?.first_name ?? null,
		from_last_name: message.from?.last_name ?? null,
		from_is_bot: message.from ? message.from.is_bot : null,
		reply_to_message_id: message.reply_to_message_id,
		thread_id: message.thread_id,
		media_group_id: message.media_group_id,
		date: toDate(message.date),
		edit_date: content.edit_date,
		update_row_id: p.updateRowId,
		created_at: now,
		updated_at: now,
	};
}

/**
 * Inserts message rows (duplicates of chat + message id skipped) and records, by seq, the rows that
 * went in: what was inserted plus the id SQL assigned.
 */
async function insertMessages(db: Database, t: Transaction, plans: MessagePlan[], records: MessageRecord[], into: Map<number, MessageRow>): Promise<void> {
	if (plans.length === 0) return;
	const rows = records.map((record) => MESSAGE_COLUMNS.map((column) => record[column]));
	let ids: Array<{ id: number; seq: number }>;
	// On MariaDB the duplicates come back too, with their old seq: only this batch's seqs are looked up below.
	if (db.returning) {
		ids = await insertReturning(db, t, "messages", MESSAGE_COLUMNS, rows, "id, seq", { ignoreDuplicates: true });
	} else {
		await insertRows(db, t, "messages", MESSAGE_COLUMNS, rows, { ignoreDuplicates: true });
		ids = await all(db, t, `SELECT id, seq FROM messages WHERE seq IN (${placeholders(plans.length)})`, plans.map((p) => p.seq));
	}
	const idBySeq = new Map(ids.map((r) => [Number(r.seq), Number(r.id)]));
	plans.forEach((plan, i) => {
		const id = idBySeq.get(plan.seq);
		if (id === undefined) return; // not inserted: the same chat and message id was stored before
		into.set(plan.seq, { ...records[i]!, id, status: null, error: null } as unknown as MessageRow);
	});
}

type MessagePlan = Planned & { item: Extract<UpdateItem, { message: MessageInfo }>; chatId: number };

/** Inserts new messages and applies edits; returns the stored row of every message item by its seq. */
async function storeMessages(db: Database, t: Transaction, planned: Planned[], now: Date): Promise<Map<number, MessageRow>> {
	const result = new Map<number, MessageRow>();
	const withMessage = planned.filter((p): p is MessagePlan => Boolean(p.item.message) && p.chatId !== null);
	const fresh = withMessage.filter((p) => !p.item.edit);
	// A message Telegram delivers again under another update_id is kept once (unique chat + message id).
	await insertMessages(db, t, fresh, fresh.map((p) => messageRecord(p, p.item.message, now)), result);

	// Edits, and new messages that were already stored (same chat and message id): look them up.
	for (const p of withMessage.filter((m) => !result.has(m.seq))) {
		const { message } = p.item;
		const [existing] = await all<MessageRow>(db, t, "SELECT * FROM messages WHERE chat_id = ? AND telegram_message_id = ?", [p.chatId, message.telegram_message_id]);
		if (existing && p.item.edit) {
			const content = messageColumns(message);
			// Only an edit at least as new as the stored one changes the message: Telegram redelivers a
			// push that failed after later ones went through, and the older text must not come back.
			// Either way the edit joins the message's history, and its event carries the message as
			// stored, so a client that applies events in order never rolls back either.
			const applied = await run(
				db,
				t,
				"UPDATE messages SET type = ?, text = ?, caption = ?, entities = ?, media = ?, edit_date = ?, updated_at = ? WHERE id = ? AND (edit_date IS NULL OR edit_date <= ?)",
				[content.type, content.text, content.caption, content.entities, content.media, content.edit_date, now, existing.id, content.edit_date],
			);
			await insertRows(db, t, "message_edits", ["message_id", "seq", "text", "caption", "entities", "media", "edit_date", "created_at"], [
				[existing.id, p.seq, content.text, content.caption, content.entities, content.media, content.edit_date, now],
			]);
			result.set(p.seq, applied.changes > 0 ? ({ ...existing, ...content } as MessageRow) : existing);
		} else if (existing) {
			result.set(p.seq, existing);
		} else {
			// An edit of a message the gateway never saw: store it as it is now.
			await insertMessages(db, t, [p], [messageRecord(p, message, now)], result);
		}
	}
	return result;
}

function draftFor(p: Planned, row: MessageRow | undefined): EventDraft {
	const { item, botId, chatId } = p;
	if (item.message && row) {
		const type = item.edit ? "edited_message" : "new_message";
		return {
			type,
			bot_id: botId,
			chat_id: chatId,
			message_id: Number(row.id),
			payload: () => ({ type, bot_id: botId, chat_id: chatId, message: messageView(row) }),
		};
	}
	// API.md: `update` is the raw update (update_id and its kind, as Telegram sent it).
	return {
		type: "update",
		bot_id: botId,
		chat_id: chatId,
		message_id: null,
		payload: () => ({ type: "update", bot_id: botId, chat_id: chatId, update_kind: item.kind, update: JSON.parse(p.raw) as unknown }),
	};
}
