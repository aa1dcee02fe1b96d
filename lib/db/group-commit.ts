/**
 * Writes that many callers make at once, as group commits (lib/batcher.ts): the items that arrive
 * while one transaction is written share the next. One batcher per database, made on first use.
 * The send queue's writes use it (ingest has a Batcher of its own, with its own batch sizes): one
 * transaction per item made SQLite's one writer the limit of a node.
 */
import { Batcher } from "../batcher";
import { isDbConflict, toApiError } from "../errors";
import type { Database } from "./connection";

/** Items per transaction: large enough to amortise a transaction, small enough to keep each short. */
const MAX_BATCH = 64;

export function groupCommitPer<I, O>(write: (db: Database, items: I[]) => Promise<O[]>): (db: Database) => Batcher<I, O> {
	const batchers = new WeakMap<Database, Batcher<I, O>>();
	return (db) => {
		let batcher = batchers.get(db);
		if (!batcher) {
			// One transaction at a time: SQLite has one writer, and on MySQL batches would only queue for
			// the same rows' locks. The database away fails every item at once; any other failure, a
			// deadlock or lock wait included (503 too, but about some rows, not the store), is written
			// again item by item, so one bad or contended item cannot fail its neighbours.
			batcher = new Batcher({
				write: (items) => write(db, items),
				maxBatch: MAX_BATCH,
				concurrency: 1,
				isUnavailable: (err) => toApiError(err).status === 503 && !isDbConflict(err),
			});
			batchers.set(db, batcher);
		}
		return batcher;
	};
}
