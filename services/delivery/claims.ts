/**
 * Delivery workers take due deliveries under a lease (lease_owner, lease_until): on MySQL with
 * FOR UPDATE SKIP LOCKED, so two nodes never take the same row; on SQLite (one process) inside its
 * single writer. A row whose lease ran out (its node died) is due again. With in-order delivery, a
 * chat's next event waits until the one before it succeeded or died.
 */
import type { Database } from "../../lib/db/connection";
import { retryingConflicts } from "../../lib/db/conflicts";
import { all, inIds, placeholders, read, run } from "../../lib/db/raw";

export interface Claimed {
	id: number;
	webhook_id: number;
	event_seq: number;
	event_type: string;
	chat_id: number | null;
	/** Every attempt so far. */
	attempts: number;
	/** Attempts before the schedule last restarted: the schedule counts from here. */
	schedule_base: number;
}

/**
 * A delivery is due when it waits and its time has come, or when its claim's lease ran out. Each
 * branch names its status, so it reads the index on (webhook_id, status, next_attempt_at) in its
 * own order, up to the rows it takes: never the webhook's delivered history, which only grows, nor
 * a sort of its whole backlog. Waiting rows go longest-waiting first (for new deliveries that is
 * event order); in-flight rows are few (the endpoint's cap).
 */
const DUE_BRANCHES = [
	{ where: "d.status = 'pending' AND d.next_attempt_at <= ?", order: "d.next_attempt_at, d.id" },
	{ where: "d.status = 'failed' AND d.next_attempt_at <= ?", order: "d.next_attempt_at, d.id" },
	{ where: "d.status = 'in_flight' AND d.lease_until < ?", order: "d.event_seq, d.id" },
] as const;

/**
 * Active webhooks with deliveries due now, a page at a time after `afterId` (a plain read: it takes
 * nothing), among `onlyIds` when given (due-hints.ts). Paging in id order and wrapping around gives
 * every endpoint its turn, however many others have work waiting behind an open breaker; disabled
 * webhooks' leftovers are never picked.
 */
export async function webhooksWithDueDeliveries(db: Database, afterId = 0, limit = 500, onlyIds?: readonly number[]): Promise<number[]> {
	const now = new Date();
	const active = db.dialect === "mysql" ? "w.is_active = TRUE" : "w.is_active = 1";
	const among = onlyIds === undefined ? null : inIds(db, onlyIds);
	const rows = await read<{ id: number }>(
		db,
		`SELECT w.id FROM webhooks w WHERE ${active} AND w.id > ?${among ? ` AND w.id ${among.sql}` : ""}
		   AND (${DUE_BRANCHES.map((b) => `EXISTS (SELECT 1 FROM webhook_deliveries d WHERE d.webhook_id = w.id AND ${b.where})`).join(" OR ")})
		 ORDER BY w.id LIMIT ?`,
		[afterId, ...(among?.values ?? []), ...DUE_BRANCHES.map(() => now), limit],
	);
	return rows.map((r) => Number(r.id));
}

/** Webhooks per claiming statement: three SELECTs each, and SQLite allows 500 in one compound. */
const WEBHOOKS_PER_STATEMENT = 50;

/**
 * SELECTs, each with its own ORDER BY and LIMIT (and row lock), as one statement: MySQL takes them
 * in parentheses, SQLite only as subqueries.
 */
function unionAll(dialect: Database["dialect"], selects: string[], lock: string): string {
	const parts = dialect === "mysql" ? selects.map((sql) => `(${sql}${lock})`) : selects.map((sql) => `SELECT * FROM (${sql})`);
	return parts.join(" UNION ALL ");
}

export interface ClaimRequest {
	id: number;
	ordered: boolean;
	/** At most this many of its deliveries (1 for a half-open endpoint's probe). */
	count: number;
	/** The endpoint's cap on attempts in flight, across every delivery node. */
	maxConcurrency: number;
}

export interface ClaimOptions {
	/**
	 * This node's claims of a webhook whose request is over but whose outcome is not on record yet.
	 * They are still in_flight in the table, but off the wire, so they leave room under the cap.
	 * Only on SQLite: there one connection runs every statement in order, so the count and this
	 * node's tally agree; on MySQL an outcome committed on another connection could be discounted twice.
	 */
	answeredHere?: (webhookId: number) => number;
	/** The most rows claimed in all (this node's room), shared out in the order the requests are listed. */
	limit?: number;
}

/** Takes, in one transaction, up to each webhook's count of its due deliveries, oldest event first. */
export async function claimDeliveries(db: Database, requests: ClaimRequest[], owner: string, leaseMs: number, options: ClaimOptions = {}): Promise<Claimed[]> {
	const asked = requests.filter((r) => r.count > 0);
	if (asked.length === 0 || (options.limit !== undefined && options.limit <= 0)) return [];
	// Webhook rows are locked in id order: callers list them shuffled (fairness), and two nodes
	// locking the same rows in different orders deadlock each other.
	const ids = asked.map((r) => r.id).sort((a, b) => a - b);
	const now = new Date();
	// Read committed (MySQL): each statement sees what other nodes committed before it ran (the count
	// below, after the locks), and rows a scan passes over without taking them stay unlocked: under
	// REPEATABLE READ the claim's UPDATE held rows it did not change, and deadlocked another node's
	// recording of outcomes. A deadlock still possible is met by doing the claim again.
	return retryingConflicts(() => db.rawTransaction(async (t) => {
		// The cap is the endpoint's, not the node's: count every node's live claims, with the
		// webhook rows locked so two nodes cannot both fill the same room (SQLite has one writer).
		if (db.dialect === "mysql") await all(db, t, `SELECT id FROM webhooks WHERE id IN (${placeholders(ids.length)}) ORDER BY id FOR UPDATE`, ids);
		const busy = await all<{ webhook_id: number; n: number }>(
			db,
			t,
			`SELECT webhook_id, COUNT(*) AS n FROM webhook_deliveries
			  WHERE webhook_id IN (${placeholders(ids.length)}) AND status = 'in_flight' AND lease_until >= ? GROUP BY webhook_id`,
			[...ids, now],
		);
		const answeredHere = db.dialect === "sqlite" ? (options.answeredHere ?? (() => 0)) : () => 0;
		const rooms = roomsFor(asked, new Map(busy.map((b) => [Number(b.webhook_id), Number(b.n)])), answeredHere);
		const claimable = asked.filter((r) => rooms.has(r.id)).sort((a, b) => a.id - b.id);
		const found: Claimed[] = [];
		for (let i = 0; i < claimable.length; i += WEBHOOKS_PER_STATEMENT) {
			const chunk = claimable.slice(i, i + WEBHOOKS_PER_STATEMENT);
			const selects = chunk.flatMap((r) => DUE_BRANCHES.map((b) => dueSelect(db.dialect, b, r.ordered)));
			const values = chunk.flatMap((r) => DUE_BRANCHES.flatMap(() => [r.id, now, rooms.get(r.id)!]));
			found.push(...(await all<Claimed>(db, t, unionAll(db.dialect, selects, db.dialect === "mysql" ? " FOR UPDATE SKIP LOCKED" : ""), values)));
		}
		// Each branch stopped at the webhook's room; of what they found, its oldest events go first,
		// and this node's limit goes to the webhooks in the order they were asked for.
		const rows = takeOldest(found.map(toClaimed), rooms, asked.map((r) => r.id), options.limit ?? Number.POSITIVE_INFINITY);
		if (rows.length === 0) return [];
		await run(
			db,
			t,
			`UPDATE webhook_deliveries SET status = 'in_flight', lease_owner = ?, lease_until = ?, updated_at = ? WHERE id IN (${placeholders(rows.length)})`,
			[owner, new Date(now.getTime() + leaseMs), now, ...rows.map((r) => r.id)],
		);
		return rows;
	}, { readCommitted: true }));
}

/** Each webhook's room: what it asked for, within its cap less every node's live claims (those answered here excepted). */
export function roomsFor(requests: ClaimRequest[], busyOf: Map<number, number>, answeredHere: (webhookId: number) => number): Map<number, number> {
	const rooms = new Map<number, number>();
	for (const request of requests) {
		const live = Math.max(0, (busyOf.get(request.id) ?? 0) - answeredHere(request.id));
		const room = Math.min(request.count, request.maxConcurrency - live);
		if (room > 0) rooms.set(request.id, room);
	}
	return rooms;
}

/** One branch of one webhook's due rows; with in-order delivery, only rows no earlier event of their chat still waits before. */
function dueSelect(dialect: Database["dialect"], branch: (typeof DUE_BRANCHES)[number], ordered: boolean): string {
	const sameChat = dialect === "mysql" ? "p.chat_id <=> d.chat_id" : "p.chat_id IS d.chat_id";
	const inOrder = ordered
		? ` AND NOT EXISTS (SELECT 1 FROM webhook_deliveries p WHERE p.webhook_id = d.webhook_id AND ${sameChat}
		     AND p.status IN ('pending', 'failed', 'in_flight') AND p.event_seq < d.event_seq)`
		: "";
	return `SELECT d.id, d.webhook_id, d.event_seq, d.event_type, d.chat_id, d.attempts, d.schedule_base FROM webhook_deliveries d
	  WHERE d.webhook_id = ? AND ${branch.where}${inOrder} ORDER BY ${branch.order} LIMIT ?`;
}

/** A row as the drivers return it (MySQL's BIGINTs may be strings), as numbers. */
function toClaimed(r: Claimed): Claimed {
	return {
		id: Number(r.id),
		webhook_id: Number(r.webhook_id),
		event_seq: Number(r.event_seq),
		event_type: r.event_type,
		chat_id: r.chat_id === null ? null : Number(r.chat_id),
		attempts: Number(r.attempts),
		schedule_base: Number(r.schedule_base),
	};
}

/**
 * Per webhook, in `order`, the rows of its oldest events (then lowest ids) up to its room, and no
 * more than `limit` in all.
 */
export function takeOldest(found: Claimed[], rooms: Map<number, number>, order: number[], limit: number): Claimed[] {
	const byWebhook = new Map<number, Claimed[]>();
	for (const row of [...found].sort((a, b) => a.event_seq - b.event_seq || a.id - b.id)) {
		const rows = byWebhook.get(row.webhook_id);
		if (rows) rows.push(row);
		else byWebhook.set(row.webhook_id, [row]);
	}
	const taken: Claimed[] = [];
	for (const id of order) {
		if (taken.length >= limit) break;
		taken.push(...(byWebhook.get(id) ?? []).slice(0, Math.min(rooms.get(id) ?? 0, limit - taken.length)));
	}
	return taken;
}
