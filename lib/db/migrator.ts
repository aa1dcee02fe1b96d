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

/**
 * Migrations on record that this build has no file for: the schema is newer than the code (a
 * rollback of the code after an upgrade). Umzug leaves them out of executed() and pending() alike.
 */
export async function unknownMigrations(db: Database): Promise<string[]> {
	const known = new Set(migrationFiles().map((file) => file.replace(/\.(ts|js)$/, "")));
	const recorded = await new SequelizeStorage({ sequelize: db.sequelize, tableName: "schema_migrations" }).executed();
	return recorded.filter((name) => !known.has(name));
}

export async function migrateDown(db: Database, options: { to?: string | 0; step?: number } = {}, logger?: Logger): Promise<MigrationMeta[]> {
	return withMigrationLock(db, async () => {
		// Reverting "the last one" of this build would undo a migration beneath newer ones it does not know.
		const unknown = await unknownMigrations(db);
		if (unknown.length > 0) throw new Error(`the database has migrations this build does not know (${unknown.join(", ")}): revert them with the build that has them`);
		const migrator = createMigrator(db, logger);
		return options.to !== undefined ? migrator.down({ to: options.to }) : migrator.down({ step: options.step ?? 1 });
	});
}
