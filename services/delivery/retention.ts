/**
 * Retention of the delivery log: a finished delivery (succeeded or dead) that nobody has touched
 * for the retention period goes, its attempts with it (the foreign key cascades). Deliveries still
 * to be made (pending, failed, in flight) are never removed, however old.
 *
 * Rows are visited in id order, which is the order they were created in, so a run reads only the
 * old end of the table and stops at the first delivery created after the cutoff; each batch is a
 * short transaction of its own, so the one SQLite writer is never held for long. A deleted
 * webhook's whole log goes the same way (removeDeliveriesOf).
 */
import type { Database } from "../../lib/db/connection";
import type { PruneOptions } from "../../lib/db/prune";
import { placeholders, read, run } from "../../lib/db/raw";
import { daysBefore, type RetentionJob } from "../../mixins/retention.mixin";

/** Finished deliveries past WEBHOOK_DELIVERY_RETENTION_DAYS (0 keeps them), for the service's retention mixin. */
export const webhookDeliveriesRetention: RetentionJob = {
	table: "webhook_deliveries",
	cutoff: (config, now) => daysBefore(now, config.webhookDeliveryRetentionDays),
	prune: (db, cutoff, options) => pruneFinishedDeliveries(db, cutoff, options),
};

const FINISHED = "status IN ('succeeded', 'dead')";

/** Removes finished deliveries created and last changed before `cutoff`; resolves with how many. */
export async function pruneFinishedDeliveries(db: Database, cutoff: Date, options: PruneOptions = {}): Promise<number> {
	const batch = options.batch ?? 1_000;
	let after = 0;
	let removed = 0;
	while (!options.signal?.aborted) {
		const rows = await read<{ id: number | string; prunable: number | string; old: number | string }>(
			db,
			`SELECT id, CASE WHEN ${FINISHED} AND updated_at < ? THEN 1 ELSE 0 END AS prunable, CASE WHEN created_at < ? THEN 1 ELSE 0 END AS old
			   FROM webhook_deliveries WHERE id > ? ORDER BY id LIMIT ?`,
			[cutoff, cutoff, after, batch],
		);
		const young = rows.findIndex((row) => Number(row.old) !== 1);
		const visited = young === -1 ? rows : rows.slice(0, young);
		const ids = visited.filter((row) => Number(row.prunable) === 1).map((row) => Number(row.id));
		if (ids.length > 0) {
			// The status is checked again: a delivery retried by hand since the read stays.
			const result = await db.rawTransaction((t) =>
				run(db, t, `DELETE FROM webhook_deliveries WHERE id IN (${placeholders(ids.length)}) AND ${FINISHED} AND updated_at < ?`, [...ids, cutoff]),
			);
			removed += result.changes;
		}
		if (young !== -1 || rows.length < batch) break;
		after = Number(rows[rows.length - 1]!.id);
	}
	return removed;
}

/**
 * Removes every delivery of a webhook (its attempts cascade) a batch per transaction: its log may
 * hold millions of rows, and one cascading DELETE held the only SQLite writer for seconds, stalling
 * ingest. Resolves with how many.
 */
export async function removeDeliveriesOf(db: Database, webhookId: number, options: PruneOptions = {}): Promise<number> {
	const batch = options.batch ?? 1_000;
	let removed = 0;
	while (!options.signal?.aborted) {
		const rows = await read<{ id: number | string }>(db, "SELECT id FROM webhook_deliveries WHERE webhook_id = ? ORDER BY id LIMIT ?", [webhookId, batch]);
		if (rows.length === 0) break;
		const ids = rows.map((row) => Number(row.id));
		const result = await db.rawTransaction((t) => run(db, t, `DELETE FROM webhook_deliveries WHERE id IN (${placeholders(ids.length)})`, ids));
		removed += result.changes;
	}
	return removed;
}
