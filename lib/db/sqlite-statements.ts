/**
 * Prepared statements kept per SQLite connection, for the statements a hot path runs again and
 * again (ingest's inserts, BEGIN and COMMIT). node-sqlite3 prepares every statement on the thread
 * pool and only then runs it: two trips through a busy event loop per statement, and the first
 * is spent parsing SQL it has parsed before. A kept statement is bound and run in one trip.
 *
 * A statement is kept only once it has run, so a call never waits on a prepare that may fail
 * (node-sqlite3 drops the calls queued behind a failed prepare without calling them back).
 * node-sqlite3 steps `run` and `all` to the end, which ends the statement's part in any
 * transaction; binding again resets it.
 */
import { Statement, type Database as SqliteConnection } from "sqlite3";

/** Per connection; enough for every batch size a busy ingest uses, bounded in memory. */
export const MAX_STATEMENTS = 128;

type Method = "run" | "all";
type Callback = (this: { changes?: number; lastID?: number }, err: Error | null, rows?: unknown[]) => void;

const kept = new WeakMap<SqliteConnection, Map<string, Statement>>();
/** Connections being closed: a statement run on one afterwards (a read racing shutdown) is not kept, or SQLite would refuse to close. */
const closing = new WeakSet<SqliteConnection>();

function cacheOf(connection: SqliteConnection): Map<string, Statement> {
	let cache = kept.get(connection);
	if (!cache) {
		cache = new Map();
		kept.set(connection, cache);
	}
	return cache;
}

/** Runs `sql` on a kept statement (preparing and keeping it on first use); callback as node-sqlite3's. */
export function runKept(connection: SqliteConnection, method: Method, sql: string, params: unknown, callback: Callback): void {
	const cache = cacheOf(connection);
	const statement = cache.get(sql);
	if (statement) {
		// Most recently used last: the first entry is the one to drop.
		cache.delete(sql);
		cache.set(sql, statement);
		(statement[method] as (params: unknown, cb: Callback) => void)(params, callback);
		return;
	}
	const fresh = new (Statement as unknown as new (db: SqliteConnection, sql: string, cb: (err: Error | null) => void) => Statement)(connection, sql, (err) => {
		if (err) callback.call({}, err);
	});
	// Queued behind the prepare and started straight after it, in the same trip back from the pool.
	(fresh[method] as (params: unknown, cb: Callback) => void)(params, function (this: ThisParameterType<Callback>, err, rows) {
		// Kept once it has run; two first uses at once keep one and let the other go.
		if (cache.has(sql) || closing.has(connection)) fresh.finalize();
		else {
			cache.set(sql, fresh);
			if (cache.size > MAX_STATEMENTS) {
				const [oldest, dropped] = cache.entries().next().value as [string, Statement];
				cache.delete(oldest);
				dropped.finalize();
			}
		}
		callback.call(this, err, rows);
	});
}

/** Finalizes a connection's kept statements: SQLite will not close a connection that has any. */
export async function finalizeKept(connection: SqliteConnection): Promise<void> {
	closing.add(connection);
	const cache = kept.get(connection);
	if (!cache) return;
	kept.delete(connection);
	await Promise.all([...cache.values()].map((statement) => new Promise<void>((resolve) => statement.finalize(() => resolve()))));
}

/** How many statements a connection keeps prepared (for tests and diagnostics). */
export function keptCount(connection: SqliteConnection): number {
	return kept.get(connection)?.size ?? 0;
}
