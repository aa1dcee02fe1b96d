/**
 * Removing rows past their retention, in batches: the oldest rows first, found through an index on
 * their time column, each batch deleted in a short transaction of its own, so the one SQLite writer
 * (and on MySQL the rows' locks) is never held for long, and ingest's transactions go in between.
 * Stops between batches when its signal aborts (the node is stopping, or lost the job's lease).
 */
import type { Database } from "./connection";
import { placeholders, read, run, type SqlValue } from "./raw";

export interface PruneOptions {
	/** Rows read, and at most deleted, per transaction. */
	batch?: number;
	/** Stops between batches when aborted (the node is stopping, or lost the pruning lease). */
	signal?: AbortSignal;
}

export interface PrunedTable {
	table: string;
	/** Its primary key. */
	key: string;
	/** A time column with an index that starts with it: rows where it is before the cutoff go. */
	time: string;
	/** A further condition every removed row meets (`?` placeholders), such as an upper bound on the key. */
	where?: { sql: string; values: SqlValue[] };
}

export const PRUNE_BATCH = 1_000;

/** Deletes the rows of `target` whose time is before `cutoff`; resolves with how many went. */
export async function deleteOlderThan(db: Database, target: PrunedTable, cutoff: Date, options: PruneOptions = {}): Promise<number> {
	const batch = options.batch ?? PRUNE_BATCH;
	const { table, key, time } = target;
	const also = target.where ? ` AND (${target.where.sql})` : "";
	const alsoValues = target.where?.values ?? [];
	let removed = 0;
	while (!options.signal?.aborted) {
		// Read outside the transaction: the write lock is taken only for the DELETE itself.
		const rows = await read<{ k: number | string }>(db, `SELECT ${key} AS k FROM ${table} WHERE ${time} < ?${also} ORDER BY ${time} LIMIT ?`, [
			cutoff,
			...alsoValues,
			batch,
		]);
		if (rows.length === 0) break;
		const keys = rows.map((row) => Number(row.k));
		// The conditions are checked again: a row changed since the read (never, for these tables) stays.
		const result = await db.rawTransaction((t) =>
			run(db, t, `DELETE FROM ${table} WHERE ${key} IN (${placeholders(keys.length)}) AND ${time} < ?${also}`, [...keys, cutoff, ...alsoValues]),
		);
		removed += result.changes;
		// A short page is the end; a batch that removed nothing would only find the same rows again.
		if (rows.length < batch || result.changes === 0) break;
	}
	return removed;
}
