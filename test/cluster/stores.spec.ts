/**
 * The cluster-mode stores themselves: the migrations on MariaDB/MySQL (utf8mb4, up/down/up, the seq
 * lock across connections), and the Redis shared state seen from two clients as from two nodes.
 */
import { randomBytes } from "node:crypto";
import { QueryTypes } from "sequelize";
import { openDatabase, type Database } from "../../lib/db/connection";
import { migrateDown, migrateUp, migrationFiles } from "../../lib/db/migrator";
import { createRedisState } from "../../lib/state/redis";
import type { SharedState } from "../../lib/state";
import { appendEvents, headSeq } from "../../services/broker/event-log";
import { insertBot, insertChat } from "../support/database";
import { createDatabase, dropDatabase, MYSQL_URL, REDIS_URL } from "./support/cluster";

/** Each migration file runs once. */
const MIGRATIONS = migrationFiles().length;

describe("MariaDB/MySQL schema", () => {
	const name = `tgw_stores_${randomBytes(3).toString("hex")}`;
	let db: Database;

	beforeAll(async () => {
		db = await openDatabase(await createDatabase(name));
	});
	afterAll(async () => {
		await db?.close();
		await dropDatabase(name);
	});

	it("migrates up, down to nothing, and up again; re-running is a no-op", async () => {
		expect((await migrateUp(db)).length).toBe(MIGRATIONS);
		expect(await migrateUp(db)).toEqual([]);
		await migrateDown(db, { to: 0 });
		const left = await db.sequelize.query("SHOW TABLES", { type: QueryTypes.SELECT });
		expect(left.length).toBe(1); // schema_migrations
		expect((await migrateUp(db)).length).toBe(MIGRATIONS);
	});

	it("two nodes migrating at once: one waits for the other's lock", async () => {
		const other = await openDatabase(`${MYSQL_URL}/${name}`);
		try {
			await migrateDown(db, { to: 0 });
			const [a, b] = await Promise.all([migrateUp(db), migrateUp(other)]);
			expect(a.length + b.length).toBe(MIGRATIONS);
		} finally {
			await other.close();
		}
	});

	it("every table is utf8mb4 and InnoDB; emoji round-trip", async () => {
		const tables = await db.sequelize.query<{ TABLE_NAME: string; TABLE_COLLATION: string; ENGINE: string }>(
			"SELECT TABLE_NAME, TABLE_COLLATION, ENGINE FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME <> 'schema_migrations'",
			{ type: QueryTypes.SELECT },
		);
		expect(tables.length).toBe(20);
		for (const t of tables) {
			expect(t.TABLE_COLLATION).toMatch(/^utf8mb4/);
			expect(t.ENGINE).toBe("InnoDB");
		}
		const user = await db.models.User.create({ username: "emoji 👍🏽 𝄞 ✅", email: null, password_hash: "x", last_login_at: null });
		expect((await db.models.User.findByPk(user.id))?.username).toBe("emoji 👍🏽 𝄞 ✅");
		expect(typeof user.id).toBe("number");
	});

	it("seqs from concurrent connections come out consecutive, in commit order", async () => {
		const bot = await insertBot(db);
		const chat = await insertChat(db, bot.id, 5);
		const before = await headSeq(db);
		const writes = Array.from({ length: 30 }, () =>
			db.transaction((t) =>
				appendEvents(db, t, [
					{ type: "update", bot_id: bot.id, chat_id: chat.id, message_id: null, payload: () => ({ type: "update", bot_id: bot.id, chat_id: chat.id }) },
				]),
			),
		);
		const seqs = (await Promise.all(writes)).flat().map((e) => e.seq).sort((a, b) => a - b);
		expect(seqs).toEqual(Array.from({ length: 30 }, (_, i) => before + i + 1));
	});
});

describe("Redis shared state, seen by two nodes", () => {
	let a: SharedState;
	let b: SharedState;
	const prefix = `tgwtest${randomBytes(3).toString("hex")}:`;

	beforeAll(async () => {
		a = await createRedisState(REDIS_URL, prefix);
		b = await createRedisState(REDIS_URL, prefix);
	});
	afterAll(async () => {
		await a?.close();
		await b?.close();
	});

	it("one token bucket shared by both", async () => {
		const results = [];
		for (let i = 0; i < 10; i++) results.push(await (i % 2 ? a : b).takeToken("bucket", 1, 6));
		expect(results.filter((r) => r.allowed).length).toBe(6);
		expect(results[9]).toMatchObject({ allowed: false, remaining: 0 });
		expect(results[9]!.retryAfterMs).toBeGreaterThan(0);
	});

	it("one sliding window: at most N in any window, whichever node asks", async () => {
		const results = [];
		for (let i = 0; i < 5; i++) results.push(await (i % 2 ? a : b).takeSlot("slots", 3, 400));
		expect(results.map((r) => r.allowed)).toEqual([true, true, true, false, false]);
		expect(results[3]!.retryAfterMs).toBeGreaterThan(0);
		expect(results[3]!.retryAfterMs).toBeLessThanOrEqual(400);
		await new Promise((r) => setTimeout(r, 420));
		expect((await a.takeSlot("slots", 3, 400)).allowed).toBe(true);
	});

	it("one window counter", async () => {
		await a.hit("win", 60_000);
		expect((await b.hit("win", 60_000)).count).toBe(2);
		expect((await a.peekWindow("win")).count).toBe(2);
	});

	it("one lease holder at a time; it passes on after expiry", async () => {
		expect(await a.acquireLease("lease", "node-a", 300)).toBe(true);
		expect(await b.acquireLease("lease", "node-b", 300)).toBe(false);
		expect(await a.renewLease("lease", "node-a", 300)).toBe(true);
		await new Promise((r) => setTimeout(r, 350));
		expect(await b.acquireLease("lease", "node-b", 300)).toBe(true);
		expect(await a.renewLease("lease", "node-a", 300)).toBe(false);
		await a.releaseLease("lease", "node-a");
		expect(await b.renewLease("lease", "node-b", 300)).toBe(true);
	});
});
