/**
 * Plain SQL on a transaction's own driver connection, for the few statements on the ingest hot path.
 * Sequelize's query pipeline costs more than the statements themselves there (its SQLite dialect
 * formats a stack trace for every query); everywhere else the models are used as usual.
 *
 * Placeholders are `?` on both dialects. Values are numbers, strings, booleans, null or Dates;
 * Dates are written as Sequelize writes them, so models read these rows back as usual.
 */
import type { Sequelize, Transaction } from "sequelize";
import type { Database as SqliteConnection } from "sqlite3";
import { DB_LOST_CODES } from "../errors";
import type { Database } from "./connection";
import { runKept } from "./sqlite-statements";

export type SqlValue = string | number | boolean | null | Date;

interface MysqlConnection {
	query(options: { sql: string; values: unknown[] }, callback: (err: Error | null, result: unknown) => void): void;
}

/** A driver error that means the database is away (not the statement's fault): callers answer 503. */
export class DatabaseUnavailableError extends Error {
	constructor(cause: Error) {
		super(`database unavailable: ${cause.message}`);
		this.name = "DatabaseUnavailableError";
	}
}

/** The text Sequelize stores for a Date on SQLite: "2026-01-02 03:04:05.678 +00:00". */
function sqliteTime(value: Date): string {
	const text = value.toISOString();
	// Years 0-9999 ("2026-01-02T03:04:05.678Z"); others are signed and six digits long.
	if (text.length !== 24) return text.replace("T", " ").replace("Z", " +00:00");
	return `${text.slice(0, 10)} ${text.slice(11, 23)} +00:00`;
}

function sqliteValue(value: SqlValue): string | number | null {
	if (value === null) return null;
	if (value instanceof Date) return sqliteTime(value);
	if (typeof value === "boolean") return value ? 1 : 0;
	return value;
}

function driverError(err: Error): Error {
	const code = (err as { code?: string }).code ?? "";
	return DB_LOST_CODES.has(code) ? new DatabaseUnavailableError(err) : err;
}

export interface RunResult {
	/**
	 * Rows changed by an INSERT/UPDATE/DELETE. On MySQL, rows matched (the connection asks for found
	 * rows): an UPDATE that sets the values already there counts, and so does a duplicate an insert
	 * skipped with ignoreDuplicates.
	 */
	changes: number;
	/** The id the statement reported: an INSERT's new row id, or MySQL's LAST_INSERT_ID(expr) value. */
	insertId: number;
}

/**
 * BEGIN IMMEDIATE ... COMMIT (ROLLBACK on failure) on SQLite's shared write connection, for
 * Database.rawTransaction: callers hold the in-process writer queue.
 */
export async function sqliteTransaction<T>(connection: SqliteConnection, work: (t: Transaction) => Promise<T>): Promise<T> {
	const control = (sql: string) =>
		new Promise<void>((resolve, reject) => runKept(connection, "run", sql, [], (err) => (err ? reject(driverError(err)) : resolve())));
	await control("BEGIN IMMEDIATE TRANSACTION;");
	try {
		const result = await work({ connection } as unknown as Transaction);
		await control("COMMIT;");
		return result;
	} catch (err) {
		// A COMMIT that failed may have ended the transaction already: then ROLLBACK has nothing to undo.
		await control("ROLLBACK;").catch(() => undefined);
		throw err;
	}
}

/**
 * START TRANSACTION ... COMMIT (ROLLBACK on failure) on a pooled MySQL connection, for
 * Database.rawTransaction: the statements Sequelize's transaction sends, without its cost per
 * statement (options copied, hooks, an Error captured for its stack), a tenth of an ingest node's CPU.
 */
export async function mysqlTransaction<T>(sequelize: Sequelize, work: (t: Transaction) => Promise<T>, readCommitted: boolean): Promise<T> {
	const pool = sequelize.connectionManager as unknown as {
		getConnection(options: Record<string, never>): Promise<MysqlConnection>;
		releaseConnection(connection: MysqlConnection): Promise<void>;
	};
	const connection = await pool.getConnection({});
	const control = (sql: string) =>
		new Promise<void>((resolve, reject) => connection.query({ sql, values: [] }, (err) => (err ? reject(driverError(err)) : resolve())));
	try {
		// For the next transaction only, as Sequelize sets it: the pooled connection keeps its default.
		if (readCommitted) await control("SET TRANSACTION ISOLATION LEVEL READ COMMITTED");
		await control("START TRANSACTION");
		let result: T;
		try {
			result = await work({ connection } as unknown as Transaction);
		} catch (err) {
			await control("ROLLBACK").catch(() => undefined);
			throw err;
		}
		await control("COMMIT");
		return result;
	} finally {
		// A connection that broke is found out by the pool's validation when it is next taken.
		await pool.releaseConnection(connection);
	}
}

/** Runs a statement that returns no rows. */
export function run(db: Database, t: Transaction, sql: string, values: SqlValue[] = []): Promise<RunResult> {
	const connection = (t as unknown as { connection: unknown }).connection;
	if (db.dialect === "sqlite") {
		return new Promise((resolve, reject) => {
			runKept(connection as SqliteConnection, "run", sql, values.map(sqliteValue), function (err) {
				if (err) reject(driverError(err));
				else resolve({ changes: this.changes ?? 0, insertId: this.lastID ?? 0 });
			});
		});
	}
	return new Promise((resolve, reject) => {
		(connection as MysqlConnection).query({ sql, values }, (err, result) => {
			if (err) reject(driverError(err));
			else {
				const { affectedRows, insertId } = result as { affectedRows?: number; insertId?: number | string };
				resolve({ changes: affectedRows ?? 0, insertId: Number(insertId ?? 0) });
			}
		});
	});
}

/** Runs a statement that returns rows (a SELECT, or a write with RETURNING) and returns them. */
export function all<T>(db: Database, t: Transaction, sql: string, values: SqlValue[] = []): Promise<T[]> {
	return fetchRows(db, (t as unknown as { connection: unknown }).connection, sql, values, true);
}

/** Statements are kept prepared on the one write connection (see sqlite-statements), not on readers. */
function fetchRows<T>(db: Database, connection: unknown, sql: string, values: SqlValue[], keep: boolean): Promise<T[]> {
	if (db.dialect === "sqlite") {
		return new Promise((resolve, reject) => {
			const done = (err: Error | null, found?: unknown[]) => {
				if (err) reject(driverError(err));
				else resolve(found as T[]);
			};
			const params = values.map(sqliteValue);
			if (keep) runKept(connection as SqliteConnection, "all", sql, params, done);
			else (connection as SqliteConnection).all(sql, params, done);
		});
	}
	return new Promise((resolve, reject) => {
		(connection as MysqlConnection).query({ sql, values }, (err, rows) => {
			if (err) reject(driverError(err));
			else resolve(rows as T[]);
		});
	});
}

/**
 * What JSON cannot carry into SQLite unchanged: json_each ends a string at a NUL character, and
 * turns a lone surrogate into bytes that are not UTF-8 (binding makes it U+FFFD).
 */
const LOST_IN_JSON = /\\u0000|\\ud[89a-f]/i;

/**
 * A multi-row INSERT. On SQLite the rows travel as one JSON parameter that json_each unpacks:
 * node-sqlite3 converts every bound value on the event loop (most of an ingest batch's cost there),
 * and the statement is the same whatever the batch size, so it stays prepared (sqlite-statements).
 * Rows JSON cannot carry exactly are bound one value at a time, as on MySQL.
 */
function insertStatement(db: Database, table: string, columns: readonly string[], rows: SqlValue[][], ignoreDuplicates: boolean): { sql: string; values: SqlValue[] } {
	const head = `INSERT INTO ${table} (${columns.join(", ")})`;
	// Only a duplicate key is skipped: INSERT IGNORE (MySQL) would also drop a row that breaks a
	// foreign key or NOT NULL, and INSERT OR IGNORE (SQLite) one that breaks NOT NULL or CHECK.
	const onDuplicate = !ignoreDuplicates ? "" : db.dialect === "sqlite" ? " ON CONFLICT DO NOTHING" : ` ON DUPLICATE KEY UPDATE ${columns[0]} = ${columns[0]}`;
	if (db.dialect === "sqlite") {
		const json = JSON.stringify(rows.map((row) => row.map(sqliteValue)));
		// "WHERE true": SQLite needs it to tell the upsert clause from a join's ON.
		if (!LOST_IN_JSON.test(json))
			return { sql: `${head} SELECT ${columns.map((_, i) => `value ->> ${i}`).join(", ")} FROM json_each(?) WHERE true${onDuplicate}`, values: [json] };
	}
	const tuple = `(${columns.map(() => "?").join(", ")})`;
	return { sql: `${head} VALUES ${Array.from({ length: rows.length }, () => tuple).join(", ")}${onDuplicate}`, values: rows.flat() };
}

/**
 * Where the database has INSERT ... RETURNING (db.returning): inserts many rows and returns
 * `returning` of the rows. With ignoreDuplicates, SQLite leaves the skipped duplicates out, but
 * MariaDB returns them too (its upsert touches them), so callers tell their own rows apart by a
 * column they wrote (a batch id, a fresh seq).
 */
export function insertReturning<T>(
	db: Database,
	t: Transaction,
	table: string,
	columns: readonly string[],
	rows: SqlValue[][],
	returning: string,
	options: { ignoreDuplicates?: boolean } = {},
): Promise<T[]> {
	if (!db.returning) throw new Error("this database has no INSERT ... RETURNING");
	if (rows.length === 0) return Promise.resolve([]);
	const insert = insertStatement(db, table, columns, rows, options.ignoreDuplicates ?? false);
	return all<T>(db, t, `${insert.sql} RETURNING ${returning}`, insert.values);
}

/**
 * A SELECT outside any transaction, on a connection of its own for the statement (SQLite's shared
 * reading connection, a pooled one on MySQL): for reads on hot loops.
 */
export async function read<T>(db: Database, sql: string, values: SqlValue[] = []): Promise<T[]> {
	const manager = db.sequelize.connectionManager as unknown as {
		getConnection(options?: { type?: string }): Promise<unknown>;
		releaseConnection(connection: unknown): Promise<void> | void;
	};
	const connection = await manager.getConnection({ type: "SELECT" });
	try {
		return await fetchRows<T>(db, connection, sql, values, true);
	} finally {
		await manager.releaseConnection(connection);
	}
}

/** INSERT of many rows in one statement; duplicates of a unique key are skipped when asked. */
export function insertRows(
	db: Database,
	t: Transaction,
	table: string,
	columns: readonly string[],
	rows: SqlValue[][],
	options: { ignoreDuplicates?: boolean } = {},
): Promise<RunResult> {
	if (rows.length === 0) return Promise.resolve({ changes: 0, insertId: 0 });
	const insert = insertStatement(db, table, columns, rows, options.ignoreDuplicates ?? false);
	return run(db, t, insert.sql, insert.values);
}

/**
 * `IN (...)` of ids for a kept statement: on SQLite one JSON parameter (json_each), so the statement
 * is the same whatever the number of ids (sqlite-statements keeps a bounded few); `?, ?, ?` on MySQL.
 */
export function inIds(db: Database, ids: readonly number[]): { sql: string; values: SqlValue[] } {
	if (db.dialect === "sqlite") return { sql: "IN (SELECT value FROM json_each(?))", values: [JSON.stringify(ids)] };
	// `IN ()` is a syntax error on MySQL; `IN (NULL)` matches nothing, as an empty list should.
	return ids.length === 0 ? { sql: "IN (NULL)", values: [] } : { sql: `IN (${placeholders(ids.length)})`, values: [...ids] };
}

/** `?, ?, ?` for an IN list. */
export function placeholders(count: number): string {
	return Array.from({ length: count }, () => "?").join(", ");
}
