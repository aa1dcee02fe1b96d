/**
 * The migrations on MariaDB/MySQL, where nodes share one database: 0002 does not lose what it cannot
 * give back (the users' roles, the event log's counters), and a node with nothing to migrate does
 * not queue behind another's migration lock (one that does wait is told who holds it).
 */
import { QueryTypes } from "sequelize";
import { openDatabase, type Database } from "../../lib/db/connection";
import * as migrator from "../../lib/db/migrator";
import { MIGRATION_LOCK_SQL, migrateDown, migrateUp } from "../../lib/db/migrator";
import * as seedRoles from "../../migrations/0002-seed-roles-and-sequences";
import { appendEvents, headSeq } from "../../services/broker/event-log";
import { insertBot, sequenceCounters, updateDraft } from "../support/database";
import { migratedScratchDatabase, MYSQL_URL } from "./support/cluster";

/** Runs `work` while another session (another node) holds this database's migration lock. */
async function whileAnotherHoldsTheLock<T>(name: string, work: () => Promise<T>): Promise<T> {
	const other = await openDatabase(`${MYSQL_URL}/${name}`);
	try {
		return await other.sequelize.transaction(async (t) => {
			const [rows] = await other.sequelize.query(`SELECT GET_LOCK(${MIGRATION_LOCK_SQL}, 1) AS locked`, { transaction: t });
			expect((rows as Array<{ locked: number }>)[0]?.locked).toBe(1);
			try {
				return await work();
			} finally {
				await other.sequelize.query(`SELECT RELEASE_LOCK(${MIGRATION_LOCK_SQL})`, { transaction: t });
			}
		});
	} finally {
		await other.close();
	}
}

describe("MariaDB/MySQL migrations beside running nodes", () => {
	const scratch = migratedScratchDatabase("tgw_keep");
	const { name } = scratch;
	let db: Database;
	beforeAll(() => {
		db = scratch.db;
	});

	it("0002 down refuses while users hold roles or the log has moved, and loses neither: stores go on after up", async () => {
		const user = await db.models.User.create({ username: "holder", email: null, password_hash: "x", last_login_at: null });
		const [admin] = await db.sequelize.query<{ id: number }>("SELECT id FROM roles WHERE name = 'admin'", { type: QueryTypes.SELECT });
		await db.models.UserRole.create({ user_id: user.id, role_id: admin!.id } as never);
		const bot = await insertBot(db);
		await db.rawTransaction((t) => appendEvents(db, t, [updateDraft(bot.id, null, "one"), updateDraft(bot.id, null, "two")]));
		const head = await headSeq(db);

		await expect(migrateDown(db, { to: "0002-seed-roles-and-sequences" })).rejects.toThrow(/1 user\(s\) hold roles.*seqs up to \d+/);
		expect(await db.models.UserRole.count({ where: { user_id: user.id } })).toBe(1);
		expect((await sequenceCounters(db)).events).toBe(head);

		await migrateUp(db);
		const [next] = await db.rawTransaction((t) => appendEvents(db, t, [updateDraft(bot.id, null, "three")]));
		expect(next!.seq).toBe(head + 1);
	});

	it("0002 up starts counters whose rows are missing at the log's head, not at 0", async () => {
		const [{ head }] = await db.sequelize.query<{ head: number | string }>("SELECT MAX(seq) AS head FROM events", { type: QueryTypes.SELECT });
		expect(Number(head)).toBeGreaterThan(0);
		// What an older build's down left behind.
		await db.sequelize.query("DELETE FROM sequences");
		await seedRoles.up({ context: db.sequelize.getQueryInterface() });
		expect(await sequenceCounters(db)).toEqual({ events: Number(head), webhook_dispatch: Number(head) });
	});

	it("a node with nothing pending takes no migration lock: it does not queue behind another's migration", async () => {
		const statements: string[] = [];
		const node = await openDatabase(`${MYSQL_URL}/${name}`, { logging: (sql) => statements.push(sql) });
		try {
			expect(await whileAnotherHoldsTheLock(name, () => migrateUp(node))).toEqual([]);
			expect(statements.filter((sql) => sql.includes("GET_LOCK"))).toEqual([]);
		} finally {
			await node.close();
		}
	}, 30_000);

	it("a lock wait names the session holding the lock as it begins, and again when it runs out", async () => {
		const waits: string[] = [];
		await expect(whileAnotherHoldsTheLock(name, () => migrator.withMigrationLock(db, async () => "ran", 1, (holder) => waits.push(holder)))).rejects.toThrow(
			/could not take the migration lock within 1 s: held by connection \d+ from \S+/,
		);
		expect(waits).toEqual([expect.stringMatching(/^the migration lock: held by connection \d+ from \S+/)]);
	});
});
