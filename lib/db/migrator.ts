/**
 * Umzug over Sequelize's QueryInterface: the same migrations run on MySQL/MariaDB and SQLite.
 * Executed migrations are recorded in `schema_migrations`, so running `up` again is a no-op; on
 * MySQL a named lock keeps two nodes that start together from migrating at once.
 */
import { readdirSync } from "node:fs";
import { join } from "node:path";
import type { QueryInterface } from "sequelize";
import { SequelizeStorage, Umzug, type MigrationMeta } from "umzug";
import type { Database } from "./connection";

type MigrationModule = {
	up(params: { context: QueryInterface }): Promise<void>;
	down(params: { context: QueryInterface }): Promise<void>;
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

export function createMigrator(db: Database, logger?: Logger): Umzug<QueryInterface> {
	return new Umzug<QueryInterface>({
		migrations: migrationFiles().map((file) => {
			const name = file.replace(/\.(ts|js)$/, "");
			const path = join(MIGRATIONS_DIR, file);
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

async function withMigrationLock<T>(db: Database, work: () => Promise<T>): Promise<T> {
	if (db.dialect !== "mysql") return work();
	// GET_LOCK belongs to one session: hold a dedicated connection for the lock's lifetime.
	return db.sequelize.transaction(async (t) => {
		const [rows] = await db.sequelize.query(`SELECT GET_LOCK(${MIGRATION_LOCK_SQL}, ${LOCK_WAIT_SECONDS}) AS locked`, { transaction: t });
		if ((rows as Array<{ locked: number }>)[0]?.locked !== 1) {
			throw new Error(`could not take the migration lock within ${LOCK_WAIT_SECONDS} s`);
		}
		try {
			return await work();
		} finally {
			await db.sequelize.query(`SELECT RELEASE_LOCK(${MIGRATION_LOCK_SQL})`, { transaction: t });
		}
	});
}

export async function migrateUp(db: Database, logger?: Logger): Promise<MigrationMeta[]> {
	return withMigrationLock(db, () => createMigrator(db, logger).up());
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
	let reported = "";
	for (;;) {
		try {
			const pending = await pendingMigrations(db);
			if (pending.length === 0) return;
			if (pending.join() !== reported) handlers.onBehind(pending);
			reported = pending.join();
		} catch (err) {
			handlers.onError?.(err);
		}
		await new Promise((resolve) => setTimeout(resolve, everyMs));
	}
}

/**
 * Migrations on record that this build has no file for: the schema is newer than the code (a
 * rollback of the code after an upgrade). Umzug leaves them out of executed() and pending() alike.
 */
export async function unknownMigrations(db: Database): Promise<string[]> {
	const known = new Set(migrationFiles().map((file) => file.replace(/\.(ts|js)$/, "")));
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

/** Reverts migrations (see revertPlan); `onPlan` hears what will be reverted before anything is. */
export async function migrateDown(
	db: Database,
	options: { to?: string | 0; step?: number; onPlan?(names: string[]): void } = {},
	logger?: Logger,
): Promise<MigrationMeta[]> {
	return withMigrationLock(db, async () => {
		// Reverting "the last one" of this build would undo a migration beneath newer ones it does not know.
		const unknown = await unknownMigrations(db);
		if (unknown.length > 0) throw new Error(`the database has migrations this build does not know (${unknown.join(", ")}): revert them with the build that has them`);
		const migrator = createMigrator(db, logger);
		const executed = (await migrator.executed()).map((m) => m.name);
		const plan = revertPlan(executed, options);
		if (plan === null) throw new NotAppliedError(String(options.to), executed);
		options.onPlan?.(plan);
		return options.to !== undefined ? migrator.down({ to: options.to }) : migrator.down({ step: options.step ?? 1 });
	});
}
