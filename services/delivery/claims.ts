/**
 * Delivery workers take due deliveries under a lease (lease_owner, lease_until): on MySQL with
 * FOR UPDATE SKIP LOCKED, so two nodes never take the same row; on SQLite (one process) inside its
 * single writer. A row whose lease ran out (its node died) is due again. With in-order delivery, a
 * chat's next event waits until the one before it succeeded or died.
 */
import type { Database } from "../../lib/db/connection";
import { all, placeholders, read, run } from "../../lib/db/raw";

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

const DUE = "((d.status IN ('pending', 'failed') AND d.next_attempt_at <= ?) OR (d.status = 'in_flight' AND d.lease_until < ?))";

/**
 * Active webhooks with deliveries due now, a page at a time after `afterId` (a plain read: it takes
 * nothing). Paging in id order and wrapping around gives every endpoint its turn, however many
 * others have work waiting behind an open breaker; disabled webhooks' leftovers are never picked.
 */
export async function webhooksWithDueDeliveries(db: Database, afterId = 0, limit = 500): Promise<number[]> {
	const now = new Date();
	const active = db.dialect === "mysql" ? "w.is_active = TRUE" : "w.is_active = 1";
	const rows = await read<{ id: number }>(
		db,
		`SELECT w.id FROM webhooks w WHERE ${active} AND w.id > ?
		   AND EXISTS (SELECT 1 FROM webhook_deliveries d WHERE d.webhook_id = w.id AND ${DUE})
		 ORDER BY w.id LIMIT ?`,
		[afterId, now, now, limit],
	);
	return rows.map((r) => Number(r.id));
}

export interface ClaimRequest {
	id: number;
	ordered: boolean;
	/** At most this many of its deliveries (the room this node has for it). */
	count: number;
	/** The endpoint's cap on attempts in flight, across every delivery node. */
	maxConcurrency: number;
}

/**
 * Takes, in one transaction, up to each webhook's count of its due deliveries, oldest event first.
 * `answeredHere(id)`: this node's claims of that webhook whose request is over but whose outcome is
 * not on record yet. They are still in_flight in the table, but off the wire, so they leave room
 * under the cap. Only on SQLite: there one connection runs every statement in order, so the count
 * and this node's tally agree; on MySQL an outcome committed on another connection could be
 * discounted twice.
 */
export async function claimDeliveries(db: Database, requests: ClaimRequest[], owner: string, leaseMs: number, answeredHere: (webhookId: number) => number = () => 0): Promise<Claimed[]> {
	// Webhook rows are locked in id order: callers list them shuffled (fairness), and two nodes
	// locking the same rows in different orders deadlock each other.
	const wanted = requests.filter((r) => r.count > 0).sort((a, b) => a.id - b.id);
	if (wanted.length === 0) return [];
	const now = new Date();
	const sameChat = db.dialect === "mysql" ? "p.chat_id <=> d.chat_id" : "p.chat_id IS d.chat_id";
	const lock = db.dialect === "mysql" ? " FOR UPDATE SKIP LOCKED" : "";
	return db.transaction(async (t) => {
		const rows: Claimed[] = [];
		for (const request of wanted) {
			// The cap is the endpoint's, not the node's: count every node's live claims, with the
			// webhook row locked so two nodes cannot both fill the same room (SQLite has one writer).
			if (db.dialect === "mysql") await all(db, t, "SELECT id FROM webhooks WHERE id = ? FOR UPDATE", [request.id]);
			const [busy] = await all<{ n: number }>(
				db,
				t,
				"SELECT COUNT(*) AS n FROM webhook_deliveries WHERE webhook_id = ? AND status = 'in_flight' AND lease_until >= ?",
				[request.id, now],
			);
			const answered = db.dialect === "sqlite" ? answeredHere(request.id) : 0;
			const room = Math.min(request.count, request.maxConcurrency - Math.max(0, Number(busy?.n ?? 0) - answered));
			if (room <= 0) continue;
			const inOrder = request.ordered
				? ` AND NOT EXISTS (SELECT 1 FROM webhook_deliveries p WHERE p.webhook_id = d.webhook_id AND ${sameChat}
				     AND p.event_seq < d.event_seq AND p.status IN ('pending', 'failed', 'in_flight'))`
				: "";
			rows.push(
				...(await all<Claimed>(
					db,
					t,
					`SELECT d.id, d.webhook_id, d.event_seq, d.event_type, d.chat_id, d.attempts, d.schedule_base FROM webhook_deliveries d
					  WHERE d.webhook_id = ? AND ${DUE}${inOrder} ORDER BY d.event_seq, d.id LIMIT ?${lock}`,
					[request.id, now, now, room],
				)),
			);
		}
		if (rows.length === 0) return [];
		await run(
			db,
			t,
			`UPDATE webhook_deliveries SET status = 'in_flight', lease_owner = ?, lease_until = ?, updated_at = ? WHERE id IN (${placeholders(rows.length)})`,
			[owner, new Date(now.getTime() + leaseMs), now, ...rows.map((r) => r.id)],
		);
		return rows.map((r) => ({ ...r, id: Number(r.id), webhook_id: Number(r.webhook_id), event_seq: Number(r.event_seq), chat_id: r.chat_id === null ? null : Number(r.chat_id), attempts: Number(r.attempts), schedule_base: Number(r.schedule_base) }));
	});
}
