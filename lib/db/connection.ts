/**
 * One Sequelize instance per process, chosen by DATABASE_URL: MySQL/MariaDB (cluster) or SQLite
 * (embedded). Every service shares it, so SQLite sees a single writer and MySQL a single pool.
 */
import { accessSync, closeSync, constants, existsSync, mkdirSync, openSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { QueryTypes, Sequelize, Transaction } from "sequelize";
import type { Database as SqliteConnection } from "sqlite3";
import { SerialQueue } from "../async";
import { sqliteFileOf } from "../config";
import { defineModels, type Models } from "./models";
import { installFastSqliteQuery } from "./sqlite-query";
import { mysqlTransaction, sqliteTransaction } from "./raw";
import { finalizeKept } from "./sqlite-statements";
import { BACKSTOP_AUTOCHECKPOINT_PAGES, WalCheckpointer } from "./wal-checkpointer";

export type Dialect = "mysql" | "sqlite";

const SHARED_TRANSACTION_UUID = "tgw-transactions";

export interface Database {
	sequelize: Sequelize;
	dialect: Dialect;
	/** INSERT ... RETURNING: SQLite, and MariaDB from 10.5 (MySQL has none). */
	returning: boolean;
	models: Models;
	/** Runs `work` in one transaction; on SQLite write transactions are queued in-process (one writer). */
	transaction<T>(work: (t: Transaction) => Promise<T>): Promise<T>;
	/**
	 * The same, for work that only runs lib/db/raw.ts statements: the transaction is begun and ended
	 * on the driver's connection directly (SQLite's write connection, a pooled one on MySQL), without
	 * Sequelize's transaction machinery (a large share of a small transaction's cost); `t` then
	 * carries nothing but its connection.
	 * `readCommitted` (MySQL): each statement reads what is committed when it runs, not a snapshot
	 * from the transaction's first read, for work that waits for a lock and then reads what others
	 * just wrote.
	 */
	rawTransaction<T>(work: (t: Transaction) => Promise<T>, options?: { readCommitted?: boolean }): Promise<T>;
	ping(timeoutMs?: number): Promise<void>;
	close(): Promise<void>;
}

export interface DatabaseOptions {
	/** MySQL pool size. */
	poolMax?: number;
	logging?: (sql: string) => void;
}

/** The file of a sqlite: URL, read as the configuration reads it ("sqlite: /data/x" made a directory named " "). */
function sqliteStorage(url: string): string {
	return sqliteFileOf(url) ?? ":memory:";
}

/**
 * Sequelize's SQLite dialect opens a fresh sqlite3 connection for every transaction (and closes it
 * after), offers no connect hook, and parses the schema again on each: a few milliseconds per
 * transaction. Transactions here are already serialised (one writer: openDatabase's `writers`
 * queue), so they share one long-lived connection, and every connection gets its pragmas once.
 */
function tuneSqliteConnections(sequelize: Sequelize): void {
	type Connection = SqliteConnection & { __tgwReady?: boolean; __tgwShared?: boolean; uuid?: string };
	const manager = sequelize.connectionManager as unknown as {
		getConnection(options?: { uuid?: string }): Promise<Connection>;
		releaseConnection(connection: Connection, force?: boolean): void;
	};
	const getConnection = manager.getConnection.bind(manager);
	const releaseConnection = manager.releaseConnection.bind(manager);
	manager.getConnection = async (options?: { uuid?: string }) => {
		const forTransaction = options?.uuid !== undefined && options.uuid !== "default";
		const connection = await getConnection(forTransaction ? { ...options, uuid: SHARED_TRANSACTION_UUID } : options);
		if (forTransaction) connection.__tgwShared = true;
		if (!connection.__tgwReady) {
			connection.__tgwReady = true;
			// SQLite refuses to close a connection that still has prepared statements (sqlite-statements).
			const close = connection.close.bind(connection);
			connection.close = ((callback?: (err: Error | null) => void) => {
				void finalizeKept(connection).then(() => close(callback));
			}) as Connection["close"];
			connection.configure("busyTimeout", 10_000);
			// Awaited: node-sqlite3 runs statements in parallel, and this pragma fails inside the
			// transaction the caller is about to open.
			for (const pragma of ["PRAGMA synchronous=NORMAL", `PRAGMA wal_autocheckpoint=${BACKSTOP_AUTOCHECKPOINT_PAGES}`]) {
				await new Promise<void>((resolve, reject) => connection.run(pragma, (error: Error | null) => (error ? reject(error) : resolve())));
			}
		}
		return connection;
	};
	manager.releaseConnection = (connection: Connection, force?: boolean) => {
		// The shared transaction connection stays open for the next transaction.
		if (connection.__tgwShared && !force) return;
		releaseConnection(connection, force);
	};
}

/** The one connection every SQLite transaction runs on (tuneSqliteConnections). */
function sharedWriteConnection(sequelize: Sequelize): Promise<SqliteConnection> {
	const manager = sequelize.connectionManager as unknown as { getConnection(options: { uuid: string }): Promise<SqliteConnection> };
	return manager.getConnection({ uuid: SHARED_TRANSACTION_UUID });
}

/**
 * The database holds message history and password hashes: a new one is made readable by its owner
 * only (SQLite gives its -wal and -shm files the same mode), in a directory made the same way.
 */
function createPrivately(storage: string): void {
	if (storage === ":memory:" || existsSync(storage)) return;
	mkdirSync(dirname(resolve(storage)), { recursive: true, mode: 0o700 });
	closeSync(openSync(storage, "a", 0o600));
}

/**
 * SQLite opens a file it may not write read-only, without a word: every write then failed with
 * SQLITE_READONLY (answered as "Database is unavailable, try again later") while the node said ready.
 * It writes the file, and beside it the -wal and -shm files: both must be writable.
 */
function assertWritable(storage: string): void {
	if (storage === ":memory:") return;
	for (const path of [storage, dirname(resolve(storage))]) {
		try {
			accessSync(path, constants.W_OK);
		} catch {
			const who = typeof process.getuid === "function" ? ` (uid ${process.getuid()})` : "";
			throw new Error(`${path} is not writable by this process${who}: SQLite writes the database file and, beside it, its -wal and -shm files`);
		}
	}
}

/** MariaDB 10.5 and later answer INSERT ... RETURNING; VERSION() says "10.11.19-MariaDB-...". */
async function isMariaDbWithReturning(sequelize: Sequelize): Promise<boolean> {
	const [row] = await sequelize.query<{ version: string }>("SELECT VERSION() AS version", { type: QueryTypes.SELECT });
	const match = /^(\d+)\.(\d+)\..*mariadb/i.exec(row?.version ?? "");
	return match !== null && Number(match[1]) * 1000 + Number(match[2]) >= 10_005;
}

export async function openDatabase(url: string, options: DatabaseOptions = {}): Promise<Database> {
	let sequelize: Sequelize;
	let dialect: Dialect;
	let checkpointer: WalCheckpointer | undefined;
	if (url.startsWith("sqlite:")) {
		dialect = "sqlite";
		sequelize = new Sequelize({
			dialect: "sqlite",
			storage: sqliteStorage(url),
			logging: options.logging ?? false,
			transactionType: Transaction.TYPES.IMMEDIATE,
			define: { timestamps: false },
		});
		createPrivately(sqliteStorage(url));
		assertWritable(sqliteStorage(url));
		tuneSqliteConnections(sequelize);
		installFastSqliteQuery(sequelize);
		if (sqliteStorage(url) !== ":memory:") {
			await sequelize.query("PRAGMA journal_mode=WAL");
			checkpointer = new WalCheckpointer(sqliteStorage(url), undefined, (err) => process.emitWarning(`SQLite WAL checkpoint failed: ${err.message}`));
		}
	} else {
		dialect = "mysql";
		sequelize = new Sequelize(url.replace(/^mariadb:/, "mysql:"), {
			dialect: "mysql",
			logging: options.logging ?? false,
			timezone: "+00:00",
			dialectOptions: {
				charset: "utf8mb4",
				supportBigNumbers: true,
				bigNumberStrings: false,
				connectTimeout: 5_000,
				// An UPDATE reports the rows it matched, as SQLite does (Sequelize asks MySQL for rows
				// changed): a compare-and-set that writes the values already there still succeeded.
				flags: "FOUND_ROWS",
			},
			define: { timestamps: false, charset: "utf8mb4", collate: "utf8mb4_unicode_ci" },
			pool: { max: options.poolMax ?? 20, min: 0, acquire: 10_000, idle: 10_000, evict: 5_000 },
		});
	}
	await sequelize.authenticate();
	const returning = dialect === "sqlite" || (await isMariaDbWithReturning(sequelize));
	const models = defineModels(sequelize);
	// SQLite has one writer: queue writers instead of retrying BUSY.
	const writers = new SerialQueue();
	const noteWrite = () => checkpointer?.noteWrite();

	return {
		sequelize,
		dialect,
		returning,
		models,
		transaction<T>(work: (t: Transaction) => Promise<T>): Promise<T> {
			if (dialect === "sqlite") return writers.run(() => sequelize.transaction(work)).finally(noteWrite);
			return sequelize.transaction(work);
		},
		rawTransaction<T>(work: (t: Transaction) => Promise<T>, options: { readCommitted?: boolean } = {}): Promise<T> {
			if (dialect === "sqlite") return writers.run(async () => sqliteTransaction(await sharedWriteConnection(sequelize), work)).finally(noteWrite);
			return mysqlTransaction(sequelize, work, options.readCommitted ?? false);
		},
		async ping(timeoutMs = 2_000): Promise<void> {
			let timer: NodeJS.Timeout | undefined;
			const timeout = new Promise<never>((_, reject) => {
				timer = setTimeout(() => reject(new Error(`database did not answer within ${timeoutMs} ms`)), timeoutMs);
			});
			try {
				await Promise.race([sequelize.query("SELECT 1"), timeout]);
			} finally {
				clearTimeout(timer);
			}
		},
		async close() {
			// Closed first: the last connection to close checkpoints the whole log and removes it.
			await checkpointer?.close();
			await sequelize.close();
		},
	};
}
