/**
 * Umzug over Sequelize's QueryInterface: the same migrations run on MySQL/MariaDB and SQLite.
 * Executed migrations are recorded in `schema_migrations`, so running `up` again is a no-op. A lock
 * keeps two processes from migrating one database at once: a named lock on MySQL (two nodes that
 * start together), a lock file beside the database on SQLite (`npm run cli` beside the gateway).
 */
import { readdirSync } from "node:fs";
import { join } from "node:path";
import { lock as lockFile } from "proper-lockfile";
import type { QueryInterface } from "sequelize";
import { SequelizeStorage, Umzug, type MigrationMeta } from "umzug";
import type { Database } from "./connection";

type MigrationModule = {
	up(params: { context: QueryInterface }): Promise<void>;
	down(params: { context: QueryInterface }): Promise<void>;
	/** Why the migration cannot be reverted at all (data the older schema cannot hold), or null. */
	refuseDown?(params: { context: QueryInterface }): Promise<string | null>;
	/** What reverting drops that applying again cannot bring back, or null: reverted only with `discard`. */
	downLosses?(params: { context: QueryInterface }): Promise<string | null>;
};

const MIGRATIONS_DIR = join(__dirname, "..", "..", "migrations");
/**
 * GET_LOCK names are server-wide: the lock is named after the database (hashed: names are limited to
 * 64 characters), so clusters sharing a MySQL server (staging and production) do not wait for each
 * other's migrations.
 */
export const MIGRATION_LOCK_SQL = "CONCAT('tgw_migrations:', LEFT(SHA1(DATABASE()), 40))";
const LOCK_WAIT_SECONDS = 120;

type Logger = { info(message: string): void };

/** The migration files, in the order they run. */
export function migrationFiles(): string[] {
	// Compiled builds hold .js files, source checkouts .ts files; never both for one migration.
	return readdirSync(MIGRATIONS_DIR)
		.filter((file) => /^\d{4}-[\w-]+\.(ts|js)$/.test(file) && !file.endsWith(".d.ts"))
		.sort();
}

/** This build's migrations by name ("0003-message-lookups"), oldest first, with their files. */
function migrationEntries(): Array<{ name: string; path: string }> {
	return migrationFiles().map((file) => ({ name: file.replace(/\.(ts|js)$/, ""), path: join(MIGRATIONS_DIR, file) }));
}

export function createMigrator(db: Database, logger?: Logger): Umzug<QueryInterface> {
	return new Umzug<QueryInterface>({
		migrations: migrationEntries().map(({ name, path }) => {
			return {
				name,
				path,
				up: async ({ context }) => ((await import(path)) as MigrationModule).up({ context }),
				down: async ({ context }) => ((await import(path)) as MigrationModule).down({ context }),
			};
		}),
		context: db.sequelize.getQueryInterface(),
		storage: new SequelizeStorage({ sequelize: db.sequelize, tableName: "schema_migrations" }),
		logger: logger ? { info: (m) => logger.info(`migration ${String((m as { event?: string }).event ?? "")} ${String((m as { name?: string }).name ?? "")}`), warn: () => undefined, error: () => undefined, debug: () => undefined } : undefined,
	});
}

/** The MySQL session holding the migration lock, as far as the server says (empty if it cannot). */
async function mysqlLockHolder(db: Database): Promise<string> {
	try {
		const [rows] = await db.sequelize.query(`SELECT IS_USED_LOCK(${MIGRATION_LOCK_SQL}) AS holder`);
		const holder = (rows as Array<{ holder: number | null }>)[0]?.holder;
		if (holder === null || holder === undefined) return "";
		// PROCESSLIST shows other users' sessions only with the PROCESS privilege: the id alone then.
		const [sessions] = await db.sequelize.query("SELECT HOST AS host, INFO AS info FROM information_schema.PROCESSLIST WHERE ID = ?", { replacements: [holder] });
		const session = (sessions as Array<{ host: string; info: string | null }>)[0];
		const running = session?.info ? `, running ${JSON.stringify(session.info.slice(0, 80))}` : "";
		return `: held by connection ${holder}${session ? ` from ${session.host}${running}` : ""}`;
	} catch {
		return "";
	}
}

/** Heard once when the migration lock is held by another process, before waiting for it. */
type OnLockWait = (holder: string) => void;

async function withMysqlLock<T>(db: Database, waitSeconds: number, work: () => Promise<T>, onWait?: OnLockWait): Promise<T> {
	// GET_LOCK belongs to one session: hold a dedicated connection for the lock's lifetime.
	return db.sequelize.transaction(async (t) => {
		const take = async (seconds: number) => {
			const [rows] = await db.sequelize.query(`SELECT GET_LOCK(${MIGRATION_LOCK_SQL}, ${seconds}) AS locked`, { transaction: t });
			return (rows as Array<{ locked: number }>)[0]?.locked === 1;
		};
		// Tried at once first, so a wait is said while it lasts, not only when it gives up.
		let locked = await take(0);
		if (!locked) {
			onWait?.(`the migration lock${await mysqlLockHolder(db)}`);
			locked = await take(waitSeconds);
		}
		if (!locked) {
			throw new Error(`could not take the migration lock within ${waitSeconds} s${await mysqlLockHolder(db)}`);
		}
		try {
			return await work();
		} finally {
			await db.sequelize.query(`SELECT RELEASE_LOCK(${MIGRATION_LOCK_SQL})`, { transaction: t });
		}
	});
}

/** The SQLite database's file; null for an in-memory one (one process: no lock needed). */
function sqliteFile(db: Database): string | null {
	const { storage } = (db.sequelize as unknown as { options: { storage?: string } }).options;
	return storage && storage !== ":memory:" ? storage : null;
}

/** The SQLite migration lock, beside the database. */
export function sqliteLockFile(db: Database): string | null {
	const file = sqliteFile(db);
	return file ? `${file}.migration-lock` : null;
}

/**
 * A lock its holder refreshes every few seconds (proper-lockfile: an atomic mkdir, and its mtime):
 * one left by a process that died, on this host or in another container, is taken over once it has
 * not been refreshed for this long.
 */
export const LOCK_FILE_STALE_MS = 30_000;

async function withLockFile<T>(databaseFile: string, lockPath: string, waitSeconds: number, work: () => Promise<T>, onWait?: OnLockWait): Promise<T> {
	const deadline = Date.now() + waitSeconds * 1_000;
	let waited = false;
	let lost: Error | null = null;
	let release: () => Promise<void>;
	for (;;) {
		try {
			release = await lockFile(databaseFile, {
				lockfilePath: lockPath,
				realpath: false,
				stale: LOCK_FILE_STALE_MS,
				// Not proper-lockfile's default (a throw from a timer, which would end the process mid-migration).
				onCompromised: (err) => (lost = err),
			});
			break;
		} catch (err) {
			if ((err as NodeJS.ErrnoException).code !== "ELOCKED") throw err;
			if (!waited) onWait?.(`the migration lock file ${lockPath}, held by another process`);
			waited = true;
			if (Date.now() >= deadline) {
				throw new Error(`could not take the migration lock within ${waitSeconds} s: another process holds ${lockPath} (a holder that died is taken over ${LOCK_FILE_STALE_MS / 1000} s after it last refreshed it)`, { cause: err });
			}
			await new Promise((resolve) => setTimeout(resolve, 200));
		}
	}
	try {
		const result = await work();
		if (lost) throw new Error(`the migration lock ${lockPath} was lost while migrating (${(lost as Error).message}): check that no other process migrated at the same time`);
		return result;
	} finally {
		await release().catch(() => undefined);
	}
}

/** Runs `work` holding this database's migration lock, waiting up to `waitSeconds` for it (`onWait` hears that it waits, and for whom). */
export async function withMigrationLock<T>(db: Database, work: () => Promise<T>, waitSeconds = LOCK_WAIT_SECONDS, onWait?: OnLockWait): Promise<T> {
	if (db.dialect === "mysql") return withMysqlLock(db, waitSeconds, work, onWait);
	const file = sqliteFile(db);
	return file ? withLockFile(file, `${file}.migration-lock`, waitSeconds, work, onWait) : work();
}

/** The database has migrations this build does not know: it is newer than the code. */
export class SchemaAheadError extends Error {
	constructor(unknown: readonly string[], doing: string) {
		super(`the database has migrations this build does not know (${unknown.join(", ")}): it is newer than this build, so ${doing}; revert them with the build that has them, or run that build`);
		this.name = "SchemaAheadError";
	}
}

export async function migrateUp(db: Database, logger?: Logger, onWait?: OnLockWait): Promise<MigrationMeta[]> {
	// Applying this build's migrations beneath newer ones would mix two schemas, and "up to date" would be false.
	const unknown = await unknownMigrations(db);
	if (unknown.length > 0) throw new SchemaAheadError(unknown, "nothing was applied");
	// Most starts find nothing to do: those must not queue behind a long migration another process runs.
	if ((await pendingMigrations(db)).length === 0) return [];
	// up() reads what is pending again, under the lock: whoever held it before may have applied it all.
	return withMigrationLock(db, () => createMigrator(db, logger).up(), LOCK_WAIT_SECONDS, onWait);
}

/** This build's migrations not yet applied to the database, oldest first. */
export async function pendingMigrations(db: Database): Promise<string[]> {
	return (await createMigrator(db).pending()).map((m) => m.name);
}

export const SCHEMA_CHECK_EVERY_MS = 2_000;

/**
 * For a node that does not migrate (MIGRATE_ON_START=false): resolves once nothing of this build
 * is pending, checking every `everyMs`, so a node started beside the migration job (a Kubernetes
 * Job and the new pods of one rollout) becomes ready when the job is done, instead of serving on
 * a schema without its columns or crash-looping meanwhile. `onBehind` hears what is still pending
 * (at the first check, then whenever that changes); `onError` a check that failed (it is retried).
 */
export async function waitUntilMigrated(
	db: Database,
	handlers: { onBehind(pending: string[]): void; onError?(err: unknown): void },
	everyMs = SCHEMA_CHECK_EVERY_MS,
): Promise<void> {
	await waitUntilNone(() => pendingMigrations(db), handlers.onBehind, handlers.onError, everyMs);
}

/**
 * For a node whose build is older than the database (a rollback of the code, or an old node that
 * restarts during a rollout): resolves once no migration on record is unknown to this build, checking
 * every `everyMs`, so the node waits unready until the newer build's `migrate down` reverts them,
 * instead of serving on a schema its code does not know (0010 changed a key old ingest relies on).
 * `onAhead` hears the unknown migrations (at the first check, then whenever they change).
 */
export async function waitUntilNotAhead(
	db: Database,
	handlers: { onAhead(unknown: string[]): void; onError?(err: unknown): void },
	everyMs = SCHEMA_CHECK_EVERY_MS,
): Promise<void> {
	await waitUntilNone(() => unknownMigrations(db), handlers.onAhead, handlers.onError, everyMs);
}

/** Polls `list` until it is empty; `onSome` hears it at the first check and whenever it changes. */
async function waitUntilNone(list: () => Promise<string[]>, onSome: (names: string[]) => void, onError: ((err: unknown) => void) | undefined, everyMs: number): Promise<void> {
	let reported = "";
	for (;;) {
		try {
			const names = await list();
			if (names.length === 0) return;
			if (names.join() !== reported) onSome(names);
			reported = names.join();
		} catch (err) {
			onError?.(err);
		}
		await new Promise((resolve) => setTimeout(resolve, everyMs));
	}
}

/**
 * Migrations on record that this build has no file for: the schema is newer than the code (a
 * rollback of the code after an upgrade). Umzug leaves them out of executed() and pending() alike.
 */
export async function unknownMigrations(db: Database): Promise<string[]> {
	const known = new Set(migrationEntries().map((m) => m.name));
	const recorded = await new SequelizeStorage({ sequelize: db.sequelize, tableName: "schema_migrations" }).executed();
	return recorded.filter((name) => !known.has(name));
}

/**
 * What `down` reverts, newest first: the newest `step` (1 by default), or, with `to`, every
 * migration applied after it and `to` itself (umzug's `to` is inclusive; 0 reverts them all).
 * null when `to` names no applied migration.
 */
export function revertPlan(executed: readonly string[], options: { to?: string | 0; step?: number }): string[] | null {
	const newestFirst = [...executed].reverse();
	if (options.to === 0) return newestFirst;
	if (options.to !== undefined) {
		const index = newestFirst.indexOf(options.to);
		return index < 0 ? null : newestFirst.slice(0, index + 1);
	}
	return newestFirst.slice(0, options.step ?? 1);
}

/** `down --to <name>` where <name> is not an applied migration: nothing is reverted. */
export class NotAppliedError extends Error {
	constructor(name: string, executed: readonly string[]) {
		super(`"${name}" is not an applied migration (applied: ${executed.join(", ") || "none"})`);
		this.name = "NotAppliedError";
	}
}

/** A `down` that would lose data: nothing was reverted. */
export class DownRefusedError extends Error {
	constructor(message: string) {
		super(message);
		this.name = "DownRefusedError";
	}
}

/**
 * Every planned migration's refusal and losses, read before anything is reverted: a refusal met
 * half-way left the schema part reverted, with what the reverted part held dropped for good.
 */
async function checkRevert(db: Database, plan: readonly string[], discard: boolean): Promise<void> {
	const context = db.sequelize.getQueryInterface();
	const paths = new Map(migrationEntries().map((m) => [m.name, m.path]));
	const refusals: string[] = [];
	const losses: string[] = [];
	for (const name of plan) {
		const migration = (await import(paths.get(name)!)) as MigrationModule;
		const refusal = await migration.refuseDown?.({ context });
		if (refusal) refusals.push(`${name}: ${refusal}`);
		const lost = await migration.downLosses?.({ context });
		if (lost) losses.push(`${name}: ${lost}`);
	}
	if (refusals.length > 0) throw new DownRefusedError(`nothing was reverted: ${refusals.join("; ")}`);
	if (losses.length > 0 && !discard) {
		throw new DownRefusedError(`nothing was reverted: it would drop what applying the migrations again cannot bring back: ${losses.join("; ")}. Give --discard to revert and lose it.`);
	}
}

/**
 * Reverts migrations (see revertPlan); `onPlan` hears what will be reverted before anything is.
 * Refuses, reverting nothing, when one of them cannot be reverted or (without `discard`) would drop
 * what applying it again cannot bring back.
 */
export async function migrateDown(
	db: Database,
	options: { to?: string | 0; step?: number; discard?: boolean; onPlan?(names: string[]): void } = {},
	logger?: Logger,
): Promise<MigrationMeta[]> {
	return withMigrationLock(db, async () => {
		// Reverting "the last one" of this build would undo a migration beneath newer ones it does not know.
		const unknown = await unknownMigrations(db);
		if (unknown.length > 0) throw new SchemaAheadError(unknown, "nothing was reverted");
		const migrator = createMigrator(db, logger);
		const executed = (await migrator.executed()).map((m) => m.name);
		const plan = revertPlan(executed, options);
		if (plan === null) throw new NotAppliedError(String(options.to), executed);
		await checkRevert(db, plan, options.discard ?? false);
		options.onPlan?.(plan);
		return options.to !== undefined ? migrator.down({ to: options.to }) : migrator.down({ step: options.step ?? 1 });
	});
}
