/**
 * Migrations that must not lose what they cannot give back (0002: the users' roles and the event
 * log's counters), and the migration lock on SQLite files (two processes migrating one file).
 */
import { existsSync, mkdirSync, utimesSync } from "node:fs";
import { join } from "node:path";
import { QueryTypes } from "sequelize";
import { openDatabase, type Database } from "../../lib/db/connection";
import * as migrator from "../../lib/db/migrator";
import { migrateDown, migrateUp, migrationFiles } from "../../lib/db/migrator";
import * as seedRoles from "../../migrations/0002-seed-roles-and-sequences";
import { appendEvents } from "../../services/broker/event-log";
import { insertBot, migratedDatabase, sequenceCounters, updateDraft } from "../support/database";
import { tempDir } from "../support/harness";

describe("0002 (roles and the event log's counters) on SQLite", () => {
	let db: Database;
	beforeEach(async () => {
		db = await migratedDatabase();
	});
	afterEach(() => db.close());

	it("down refuses while users hold roles or the log has moved, and loses neither: stores go on after up", async () => {
		const user = await db.models.User.create({ username: "holder", email: null, password_hash: "x", last_login_at: null });
		const [admin] = await db.sequelize.query<{ id: number }>("SELECT id FROM roles WHERE name = 'admin'", { type: QueryTypes.SELECT });
		await db.models.UserRole.create({ user_id: user.id, role_id: admin!.id } as never);
		const bot = await insertBot(db);
		await db.rawTransaction((t) => appendEvents(db, t, [updateDraft(bot.id, null, "one"), updateDraft(bot.id, null, "two")]));
		await db.sequelize.query("UPDATE sequences SET value = 1 WHERE name = 'webhook_dispatch'");

		await expect(migrateDown(db, { to: "0002-seed-roles-and-sequences" })).rejects.toThrow(/1 user\(s\) hold roles.*seqs up to 2.*up to seq 1.*down --to 0003-message-lookups/);
		expect(await db.models.UserRole.count({ where: { user_id: user.id } })).toBe(1);
		expect(await sequenceCounters(db)).toEqual({ events: 2, webhook_dispatch: 1 });

		await migrateUp(db);
		const [third] = await db.rawTransaction((t) => appendEvents(db, t, [updateDraft(bot.id, null, "three")]));
		expect(third!.seq).toBe(3);
	});

	it("down still reverts a database nobody used (no roles held, counters at 0)", async () => {
		expect((await migrateDown(db, { to: "0002-seed-roles-and-sequences" })).map((m) => m.name)).toContain("0002-seed-roles-and-sequences");
		await migrateUp(db);
		expect(await sequenceCounters(db)).toEqual({ events: 0, webhook_dispatch: 0 });
	});

	it("up starts counters whose rows are missing at the log's head, not at 0", async () => {
		const bot = await insertBot(db);
		await db.rawTransaction((t) => appendEvents(db, t, [updateDraft(bot.id, null, "a"), updateDraft(bot.id, null, "b"), updateDraft(bot.id, null, "c")]));
		// What an older build's down left behind.
		await db.sequelize.query("DELETE FROM sequences");
		await seedRoles.up({ context: db.sequelize.getQueryInterface() });
		expect(await sequenceCounters(db)).toEqual({ events: 3, webhook_dispatch: 3 });
		const [next] = await db.rawTransaction((t) => appendEvents(db, t, [updateDraft(bot.id, null, "d")]));
		expect(next!.seq).toBe(4);
	});
});

describe("migration lock on SQLite files", () => {
	const file = (dir: string) => join(dir, "gateway.sqlite");

	it("two processes migrating one fresh file at once: one waits for the other, neither fails", async () => {
		const dir = tempDir("tgw-migrate-lock-");
		const [a, b] = await Promise.all([openDatabase(`sqlite:${file(dir)}`), openDatabase(`sqlite:${file(dir)}`)]);
		try {
			const [first, second] = await Promise.all([migrateUp(a), migrateUp(b)]);
			expect(first.length + second.length).toBe(migrationFiles().length);
			expect(await migrator.pendingMigrations(a)).toEqual([]);
			expect(existsSync(migrator.sqliteLockFile(a)!)).toBe(false);
		} finally {
			await Promise.all([a.close(), b.close()]);
		}
	});

	/** Another process's lock, as proper-lockfile makes it, last refreshed `agoMs` ago. */
	const heldLock = (db: Database, agoMs = 0) => {
		const path = migrator.sqliteLockFile(db)!;
		mkdirSync(path);
		const at = new Date(Date.now() - agoMs);
		utimesSync(path, at, at);
		return path;
	};

	it("nothing pending: up does not wait for a lock another process holds", async () => {
		const dir = tempDir("tgw-migrate-lock-");
		const db = await migratedDatabase(`sqlite:${file(dir)}`);
		try {
			heldLock(db);
			expect(await migrateUp(db)).toEqual([]);
		} finally {
			await db.close();
		}
	});

	it("a lock its holder stopped refreshing (the process died, here or in another container) is taken over", async () => {
		const dir = tempDir("tgw-migrate-lock-");
		const db = await openDatabase(`sqlite:${file(dir)}`);
		try {
			const path = heldLock(db, migrator.LOCK_FILE_STALE_MS + 5_000);
			expect((await migrateUp(db)).length).toBe(migrationFiles().length);
			expect(existsSync(path)).toBe(false);
		} finally {
			await db.close();
		}
	});

	it("a lock held elsewhere is waited for (said once, as the wait begins), then refused naming the file", async () => {
		const dir = tempDir("tgw-migrate-lock-");
		const db = await openDatabase(`sqlite:${file(dir)}`);
		try {
			const path = heldLock(db);
			const waits: string[] = [];
			await expect(migrator.withMigrationLock(db, async () => "ran", 1, (holder) => waits.push(holder))).rejects.toThrow(`another process holds ${path}`);
			expect(waits).toEqual([`the migration lock file ${path}, held by another process`]);
			expect(existsSync(path)).toBe(true);
		} finally {
			await db.close();
		}
	});
});
