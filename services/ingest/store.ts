/**
 * Stores a batch of Telegram updates in one transaction: each (bot, update_id) once, its chats
 * upserted, its messages stored or edited (edits keep their history), and one event per item in the
 * event log. Returns, per update, whether it was a duplicate, and the events to publish once the
 * transaction has committed.
 */
import { randomBytes } from "node:crypto";
import type { Transaction } from "sequelize";
import type { Database } from "../../lib/db/connection";
import { all, insertReturning, insertRows, placeholders, run } from "../../lib/db/raw";
import { TELEGRAM_UPDATE_RETENTION_HOURS } from "../../lib/config";
import { retryingConflicts } from "../../lib/db/conflicts";
import { allocateSeqs, insertEvents, releaseSeqs, type EventDraft, type GatewayEvent } from "../broker/event-log";
import { chatKey, forgetChats, latestChats, MAX_CHAT_CACHE, perBot, recordMigrations, rememberChats, upsertChats, type ChatCache, type ChatCacheEntry } from "./chat-upsert";
import { draftFor, storeMessages, type Planned } from "./message-store";
import type { NormalizedUpdate } from "./types";

export { SHARED_CHAT_CACHE_TTL_MS, type ChatCache } from "./chat-upsert";

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
	/** The bot's polling offset moves from `from` (as the poller read it) to `offset`: a poller that read an older one moves nothing. */
	pollingOffset?: { botId: number; offset: number; from: number };
	/**
	 * How long a stored update counts for de-duplication (TELEGRAM_UPDATE_RETENTION_HOURS): the same
	 * (bot, update_id) stored longer ago is a new update, stored in place of the old row.
	 */
	dedupWindowMs?: number;
}

const DEFAULT_DEDUP_WINDOW_MS = TELEGRAM_UPDATE_RETENTION_HOURS.default * 3_600_000;

const UPDATE_COLUMNS = ["bot_id", "update_id", "kind", "payload", "batch_id", "received_at"] as const;

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

export async function storeUpdates(db: Database, batch: IncomingUpdate[], cache: ChatCache, options: StoreOptions = {}): Promise<StoreResult> {
	const firstIndex = new Map<string, number>();
	batch.forEach((item, i) => {
		if (!firstIndex.has(updateKey(item))) firstIndex.set(updateKey(item), i);
	});
	const fresh = [...firstIndex.values()].map((i) => batch[i]!);
	const now = new Date();
	const forgetBefore = new Date(now.getTime() - (options.dedupWindowMs ?? DEFAULT_DEDUP_WINDOW_MS));
	const plan: BatchPlan = { batch, firstIndex, fresh, freshItems: itemsOf(fresh), now, forgetBefore };
	try {
		// A batch rolled back by a MySQL deadlock or lock wait timeout is stored again, from the start.
		return await retryingConflicts(async () => {
			const learned = new Map<string, ChatCacheEntry>();
			const result = await storeOnce(db, plan, cache, learned, options);
			rememberChats(cache, learned, MAX_CHAT_CACHE);
			return result;
		});
	} catch (err) {
		forgetChats(cache, batch);
		throw err;
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

		const chats = latestChats(stored);
		const chatIds = chats.size > 0 ? await upsertChats(db, t, chats, cache, learned, now) : new Map<string, number>();
		await recordMigrations(db, t, stored);

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
	const { botId, offset, from } = options.pollingOffset;
	// Compare-and-set, not "only upwards": after Telegram numbers updates anew the offset goes down (poller.ts).
	await run(db, t, "UPDATE bots SET polling_offset = ? WHERE id = ? AND polling_offset = ?", [offset, botId, from]);
}
