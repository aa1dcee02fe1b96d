/**
 * Sequelize's SQLite query class, made affordable on hot paths. Its run() formats a stack trace
 * for every statement (with source maps on, milliseconds of blocked event loop each), and asks
 * `PRAGMA table_info` before every SELECT. Here the stack is captured as usual but only turned into
 * text when the statement failed, and each table's column types are asked once (again after DDL).
 * A NUL inside a value Sequelize wrote into the SQL inline is spelled char(0) (inlinedNul). The rest
 * is Sequelize's own run(), unchanged.
 */
import type { Sequelize } from "sequelize";
import type { Database } from "sqlite3";
import { runKept } from "./sqlite-statements";

const TRANSACTION_CONTROL = /^(BEGIN|COMMIT|ROLLBACK)\b/;

type SqliteConnection = {
	__tgwShared?: boolean;
	serialize(callback: () => void): void;
	all(sql: string, params: unknown, callback: (this: unknown, err: Error | null, rows: Array<{ name: string; type: string }>) => void): void;
	[method: string]: unknown;
};

interface QueryBase {
	connection: SqliteConnection;
	sql: string;
	options?: { tableNames?: string[] };
	getDatabaseMethod(): string;
	_logQuery(sql: string, debug: unknown, parameters: unknown): () => void;
	_handleQueryResponse(metaData: unknown, columnTypes: Record<string, Record<string, string>>, err: Error | null, results: unknown, errStack?: string): unknown;
}

type QueryClass = new (...args: unknown[]) => QueryBase;

/**
 * Sequelize's SQLite dialect writes WHERE values into the statement as quoted literals, and SQLite
 * reads a statement only up to a NUL: a lookup by a client's string holding one failed ("unrecognized
 * token", a 500). SQL text has no NUL of its own, so each one sits inside a literal: close the literal
 * around it and concatenate char(0), which compares equal to the NUL a bound parameter stored.
 */
export function inlinedNul(sql: string): string {
	return sql.includes("\0") ? sql.replace(/\0/g, "'||char(0)||'") : sql;
}

function stringifyIfBigint(value: unknown): unknown {
	return typeof value === "bigint" ? value.toString() : value;
}

export function installFastSqliteQuery(sequelize: Sequelize): void {
	const dialect = (sequelize as unknown as { dialect: { Query: QueryClass } }).dialect;
	const Base = dialect.Query;
	const tableTypes = new Map<string, Record<string, string>>();

	class FastSqliteQuery extends Base {
		async run(inlineSql: string, parameters?: unknown): Promise<unknown> {
			const sql = inlinedNul(inlineSql);
			const conn = this.connection;
			this.sql = sql;
			const method = this.getDatabaseMethod();
			// Sequelize passes its `debug` logger here; DEBUG=sequelize:* output is not needed for these.
			const complete = this._logQuery(sql, () => undefined, parameters);
			if (/^\s*(CREATE|ALTER|DROP)\b/i.test(sql)) tableTypes.clear();
			return new Promise((resolve, reject) =>
				conn.serialize(async () => {
					const columnTypes: Record<string, Record<string, string>> = {};
					const errForStack = new Error();
					const executeSql = () => {
						if (sql.startsWith("-- ")) return resolve(undefined);
						// eslint-disable-next-line @typescript-eslint/no-this-alias
						const query = this;
						function afterExecute(this: unknown, executionError: Error | null, results: unknown) {
							try {
								complete();
								resolve(query._handleQueryResponse(this, columnTypes, executionError, results, executionError ? errForStack.stack : undefined));
							} catch (error) {
								reject(error);
							}
						}
						let params: unknown = parameters ?? [];
						if (params && typeof params === "object" && !Array.isArray(params)) {
							const named: Record<string, unknown> = Object.create(null);
							for (const key of Object.keys(params)) named[key] = stringifyIfBigint((params as Record<string, unknown>)[key]);
							params = named;
						} else {
							params = (params as unknown[]).map(stringifyIfBigint);
						}
						// Every write transaction begins and ends on the one shared connection: keep those prepared.
						if (conn.__tgwShared && TRANSACTION_CONTROL.test(sql)) runKept(conn as unknown as Database, method as "all" | "run", sql, params, afterExecute);
						else (conn[method] as (sql: string, params: unknown, cb: typeof afterExecute) => void)(sql, params, afterExecute);
						return null;
					};
					if (method === "all") {
						let tableNames: string[] = [];
						if (this.options?.tableNames) tableNames = this.options.tableNames;
						else {
							const match = /FROM `(.*?)`/i.exec(this.sql);
							if (match) tableNames.push(match[1]!);
						}
						const missing: string[] = [];
						for (const raw of tableNames) {
							const name = raw.replace(/`/g, "");
							if (name === "sqlite_master") continue;
							const known = tableTypes.get(name);
							if (known) columnTypes[name] = known;
							else missing.push(name);
						}
						await Promise.all(
							missing.map(
								(name) =>
									new Promise<void>((done) => {
										conn.all(`PRAGMA table_info(\`${name}\`)`, [], (err, rows) => {
											const types: Record<string, string> = {};
											if (!err) for (const row of rows) types[row.name] = row.type;
											columnTypes[name] = types;
											if (!err) tableTypes.set(name, types);
											done();
										});
									}),
							),
						);
					}
					return executeSql();
				}),
			);
		}
	}
	dialect.Query = FastSqliteQuery;
}
