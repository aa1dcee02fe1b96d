/**
 * From the event log to delivery rows. The log is the outbox: every committed event stays in it,
 * and a cursor (sequences row "webhook_dispatch") says how far deliveries have been created. One
 * dispatcher in the cluster (a lease) reads the events after the cursor, then writes one pending
 * delivery per matching webhook and moves the cursor in one transaction, so an event is neither
 * skipped nor dispatched twice even if every delivery node was down when it was stored. Because
 * seqs become visible in commit order, reading "after the cursor" never misses a late commit.
 */
import type { Transaction } from "sequelize";
import type { Database } from "../../lib/db/connection";
import { all, insertRows, read, run, type SqlValue } from "../../lib/db/raw";
import type { ReadAccess } from "../../mixins/event-stream/subscription-hub";
import { readEvents, type GatewayEvent, type Reader, type ReplayQuery } from "../broker/event-log";
import { candidatesFor } from "./audiences";
import { wants, type WebhookRule } from "./matching";

export interface Audience {
	rule: WebhookRule;
	/** What the webhook's owner may read. */
	access: ReadAccess;
}

/**
 * Which webhooks are active, in a few numbers: their count, the sum of their ids and the sum of a
 * hash of their ids. Any webhook created, deleted, disabled or enabled on any node changes it,
 * without waiting for that node's broadcast. Always read with the one query below, so a list and
 * a check never disagree only because they were computed differently.
 */
export type ActiveWebhooks = string;

/** The active webhooks as the database has them now (inside `t`, as that transaction sees them). */
export async function activeWebhooksNow(db: Database, t?: Transaction): Promise<ActiveWebhooks> {
	const sql = "SELECT COUNT(*) AS n, COALESCE(SUM(id), 0) AS s, COALESCE(SUM((id * 40503) % 65521), 0) AS h FROM webhooks WHERE is_active = ?";
	const [row] = t ? await all<{ n: unknown; s: unknown; h: unknown }>(db, t, sql, [true]) : await read<{ n: unknown; s: unknown; h: unknown }>(db, sql, [true]);
	return `${Number(row!.n)}:${Number(row!.s)}:${Number(row!.h)}`;
}

/** The audiences of every active webhook, and which webhooks were active when they were read. */
export interface AudienceList {
	audiences: Audience[];
	active: ActiveWebhooks;
}

export const DELIVERY_COLUMNS = ["webhook_id", "event_seq", "event_type", "chat_id", "status", "attempts", "next_attempt_at", "created_at", "updated_at"] as const;

export function deliveryRow(webhookId: number, event: GatewayEvent, now: Date): SqlValue[] {
	return [webhookId, event.seq, event.type, event.chat_id, "pending", 0, now, now, now];
}

/** Pending deliveries, in statements of at most 500 rows. */
async function insertDeliveries(db: Database, t: Transaction, rows: SqlValue[][]): Promise<void> {
	for (let i = 0; i < rows.length; i += 500) await insertRows(db, t, "webhook_deliveries", DELIVERY_COLUMNS, rows.slice(i, i + 500));
}

/** A replay's answer: `complete: false` means the cap stopped it; replay again after last_seq. */
export interface ReplayResult {
	scheduled: number;
	complete: boolean;
	/** The highest seq scheduled (null when nothing was). */
	last_seq: number | null;
}

export interface DispatchResult {
	/** Events read after the cursor. */
	events: number;
	/** Deliveries created. */
	deliveries: number;
	/** Webhooks that got at least one delivery. */
	webhookIds: number[];
	/** The step was dropped because the active webhooks changed: build the audiences again and retry. */
	stale?: true;
}

const NOTHING: DispatchResult = { events: 0, deliveries: 0, webhookIds: [] };
const STALE: DispatchResult = { ...NOTHING, stale: true };

/**
 * One step of the dispatcher: up to `limit` events after the cursor. The events are read and
 * matched before the write transaction opens, so the transaction (on SQLite, the one writer that
 * every ingest commit waits for) holds only the cursor move and the inserts. Only the lease holder
 * moves the cursor; if it moved anyway (a lease lost half-way), the step is dropped and run again.
 * So is a step whose audiences went stale while it ran: this node heard of a change (`isCurrent()`
 * turned false), or the active webhooks in the database are no longer those the list was built
 * from (a webhook created on another node whose broadcast has not arrived yet). Either way a
 * webhook created meanwhile would otherwise miss, for good, the events this step read.
 */
export async function dispatchBatch(db: Database, list: AudienceList, limit = 500, isCurrent: () => boolean = () => true): Promise<DispatchResult> {
	const [cursorRow] = await read<{ value: number | string }>(db, "SELECT value FROM sequences WHERE name = 'webhook_dispatch'");
	if (!cursorRow) throw new Error("the webhook_dispatch sequence row is missing: run the migrations");
	const cursor = Number(cursorRow.value);
	const events = await readEvents(db, { afterSeq: cursor, limit });
	if (events.length === 0) return NOTHING;
	const now = new Date();
	const rows: SqlValue[][] = [];
	const webhookIds = new Set<number>();
	for (const event of events) {
		// Only the webhooks whose scope could take the event (audiences.ts); `wants` still decides.
		for (const { rule, access } of candidatesFor(list, event)) {
			if (wants(rule, access, event)) {
				rows.push(deliveryRow(rule.id, event, now));
				webhookIds.add(rule.id);
			}
		}
	}
	const stale = new Error("the webhooks changed while this step ran");
	try {
		return await db.rawTransaction(async (t) => {
			// Moves the cursor only from where this step read it; the row stays locked until commit.
			const moved = await run(db, t, "UPDATE sequences SET value = ? WHERE name = 'webhook_dispatch' AND value = ?", [events[events.length - 1]!.seq, cursor]);
			if (moved.changes !== 1) return NOTHING;
			// Read after the events were: a webhook committed before any of them is seen here.
			if ((await activeWebhooksNow(db, t)) !== list.active) throw stale;
			await insertDeliveries(db, t, rows);
			// The last moment to notice a change before the commit makes this step final.
			if (!isCurrent()) throw stale;
			return { events: events.length, deliveries: rows.length, webhookIds: [...webhookIds] };
		});
	} catch (err) {
		if (err === stale) return STALE;
		throw err;
	}
}

/**
 * The part of the log a webhook's replay reads, as the log's indexes can select it: its chats
 * (those its owner may read), or its bot's events, or everything its owner may read; null when
 * that is nothing. Only an admin's scope-all webhook reads the whole log. What is read is still
 * matched event by event (event types, a reply's message, the owner's access).
 */
export function replayScope(audience: Audience, reader?: Reader): Pick<ReplayQuery, "chatIds" | "botId" | "readableBy"> | null {
	const { rule, access } = audience;
	const readable = (chats: number[]) => (access.all ? chats : chats.filter((id) => access.chats.has(id)));
	const scope: Pick<ReplayQuery, "chatIds" | "botId" | "readableBy"> = {};
	if (rule.scope === "chat" || rule.scope === "reply") scope.chatIds = readable(rule.chat_ids ?? []);
	else if (!access.all) {
		if (access.chats.size === 0) return null;
		// The owner's grants, looked up by the query: an owner may read 100k chats, too many to list in it.
		if (reader) scope.readableBy = reader;
		else scope.chatIds = [...access.chats].sort((a, b) => a - b);
	}
	if (rule.scope === "bot") {
		if (rule.bot_id === null) return null;
		scope.botId = rule.bot_id;
	}
	return scope.chatIds?.length === 0 ? null : scope;
}

/** Events one replay call reads at most: with event types that match little, the cap on deliveries alone let one call read the whole log (200,000 events: 1 s). */
export const REPLAY_SCAN_MAX = 200_000;

/**
 * Replay: new deliveries of every matching event after a seq (or since a time) for one webhook,
 * earlier events included, at most `cap` of them, reading at most `scanMax` events. Receivers
 * de-duplicate on webhook-id. Incomplete, `last_seq` is where the next call goes on from.
 */
export async function scheduleReplay(
	db: Database,
	audience: Audience,
	from: { afterSeq: number } | { since: Date },
	cap: number,
	/** The webhook's owner, whose grants bound a replay of a bot or of everything. */
	reader?: Reader,
	scanMax = REPLAY_SCAN_MAX,
): Promise<ReplayResult> {
	const scope = replayScope(audience, reader);
	if (scope === null) return { scheduled: 0, complete: true, last_seq: null };
	let afterSeq: number;
	if ("afterSeq" in from) afterSeq = from.afterSeq;
	else {
		// Through the driver, not Sequelize's replacements: those write a Date to MySQL without its
		// milliseconds, and the replay then took in events up to a second before `since`.
		const rows = await read<{ seq: number | null }>(db, "SELECT MIN(seq) - 1 AS seq FROM events WHERE created_at >= ?", [from.since]);
		const first = rows[0]?.seq;
		if (first === null || first === undefined) return { scheduled: 0, complete: true, last_seq: null };
		afterSeq = Number(first);
	}
	let scheduled = 0;
	let scanned = 0;
	let lastSeq: number | null = null;
	for (;;) {
		const events = await readEvents(db, { ...scope, afterSeq, limit: 1_000 });
		const now = new Date();
		const matching = events.filter((e) => wants(audience.rule, audience.access, e, { includeEarlier: true }));
		const taken = matching.slice(0, cap - scheduled);
		const rows = taken.map((e) => deliveryRow(audience.rule.id, e, now));
		if (rows.length > 0) await db.rawTransaction((t) => insertDeliveries(db, t, rows));
		scheduled += rows.length;
		if (taken.length > 0) lastSeq = taken[taken.length - 1]!.seq;
		// The cap cut this page short: more matches wait after lastSeq, even if the log ends here.
		if (taken.length < matching.length) return { scheduled, complete: false, last_seq: lastSeq };
		if (events.length < 1_000) return { scheduled, complete: true, last_seq: lastSeq };
		afterSeq = events[events.length - 1]!.seq;
		if (scheduled >= cap) return { scheduled, complete: false, last_seq: lastSeq };
		scanned += events.length;
		// Read as far as it may: the next call goes on after the last event read, matched or not.
		if (scanned >= scanMax) return { scheduled, complete: false, last_seq: afterSeq };
	}
}
