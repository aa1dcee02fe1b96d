/**
 * Plain SQL on a transaction's own driver connection, for the few statements on the ingest hot path.
 * Sequelize's query pipeline costs more than the statements themselves there (its SQLite dialect
 * formats a stack trace for every query); everywhere else the models are used as usual.
 *
 * Placeholders are `?` on both dialects. Values are numbers, strings, booleans, null or Dates;
 * Dates are written as Sequelize writes them, so models read these rows back as usual.
 */
import type { Transaction } from "sequelize";
import type { Database as SqliteConnection } from "sqlite3";
import type { Database } from "./connection";

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

const UNAVAILABLE_CODES = new Set([
	"ECONNREFUSED",
	"ECONNRESET",
	"ETIMEDOUT",
	"EPIPE",
	"PROTOCOL_CONNECTION_LOST",
	"PROTOCOL_SEQUENCE_TIMEOUT",
	"ER_CON_COUNT_ERROR",
	"ER_SERVER_SHUTDOWN",
	"SQLITE_BUSY",
	"SQLITE_IOERR",
	"SQLITE_FULL",
	"SQLITE_CANTOPEN",
]);

/** MySQL lock conflicts a transaction can simply run again after. */
export function isRetryableConflict(err: unknown): boolean {
	const code = (err as { code?: string; parent?: { code?: string } }).code ?? (err as { parent?: { code?: string } }).parent?.code;
	return code === "ER_LOCK_DEADLOCK" || code === "ER_LOCK_WAIT_TIMEOUT";
}

function sqliteValue(value: SqlValue): string | number | null {
	if (value === null) return null;
	if (value instanceof Date) return value.toISOString().replace("T", " ").replace("Z", " +00:00");
	if (typeof value === "boolean") return value ? 1 : 0;
	return value;
}

function driverError(err: Error): Error {
	const code = (err as { code?: string }).code ?? "";
	const errno = (err as { errno?: number }).errno;
	return UNAVAILABLE_CODES.has(code) || (code === "SQLITE_BUSY" && errno === 5) ? new DatabaseUnavailableError(err) : err;
}

export interface RunResult {
	/** Rows changed by an INSERT/UPDATE/DELETE. */
	changes: number;
}

/** Runs a statement that returns no rows. */
export function run(db: Database, t: Transaction, sql: string, values: SqlValue[] = []): Promise<RunResult> {
	const connection = (t as unknown as { connection: unknown }).connection;
	if (db.dialect === "sqlite") {
		return new Promise((resolve, reject) => {
			(connection as SqliteConnection).run(sql, values.map(sqliteValue), function (this: { changes: number }, err: Error | null) {
				if (err) reject(driverError(err));
				else resolve({ changes: this.changes });
			});
		});
	}
	return new Promise((resolve, reject) => {
		(connection as MysqlConnection).query({ sql, values }, (err, result) => {
			if (err) reject(driverError(err));
			else resolve({ changes: (result as { affectedRows?: number }).affectedRows ?? 0 });
		});
	});
}

/** Runs a SELECT and returns its rows. */
export function all<T>(db: Database, t: Transaction, sql: string, values: SqlValue[] = []): Promise<T[]> {
	const connection = (t as unknown as { connection: unknown }).connection;
	if (db.dialect === "sqlite") {
		return new Promise((resolve, reject) => {
			(connection as SqliteConnection).all(sql, values.map(sqliteValue), (err: Error | null, rows: T[]) => {
				if (err) reject(driverError(err));
				else resolve(rows);
			});
		});
	}
	return new Promise((resolve, reject) => {
		(connection as MysqlConnection).query({ sql, values }, (err, rows) => {
			if (err) reject(driverError(err));
			else resolve(rows as T[]);
		});
	});
}

function insertSql(db: Database, table: string, columns: readonly string[], count: number, ignoreDuplicates: boolean): string {
	const tuple = `(${columns.map(() => "?").join(", ")})`;
	const verb = ignoreDuplicates ? (db.dialect === "sqlite" ? "INSERT OR IGNORE" : "INSERT IGNORE") : "INSERT";
	return `${verb} INTO ${table} (${columns.join(", ")}) VALUES ${Array.from({ length: count }, () => tuple).join(", ")}`;
}

/**
 * SQLite only (MySQL has no INSERT ... RETURNING): inserts many rows and returns `returning` of
 * the rows actually inserted (duplicates skipped with ignoreDuplicates are not returned).
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
	if (db.dialect !== "sqlite") throw new Error("insertReturning is for SQLite");
	if (rows.length === 0) return Promise.resolve([]);
	return all<T>(db, t, `${insertSql(db, table, columns, rows.length, options.ignoreDuplicates ?? false)} RETURNING ${returning}`, rows.flat());
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
		return await all<T>(db, { connection } as unknown as Transaction, sql, values);
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
	if (rows.length === 0) return Promise.resolve({ changes: 0 });
	return run(db, t, insertSql(db, table, columns, rows.length, options.ignoreDuplicates ?? false), rows.flat());
}

/** `?, ?, ?` for an IN list. */
export function placeholders(count: number): string {
	return Array.from({ length: count }, () => "?").join(", ");
}
