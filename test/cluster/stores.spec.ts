/**
 * The cluster-mode stores themselves: the migrations on MariaDB/MySQL (utf8mb4, up/down/up, the seq
 * lock across connections), and the Redis shared state seen from two clients as from two nodes.
 */
import { randomBytes } from "node:crypto";
import { QueryTypes } from "sequelize";
import { openDatabase, type Database } from "../../lib/db/connection";
import { MIGRATION_LOCK_SQL, migrateDown, migrateUp, migrationFiles } from "../../lib/db/migrator";
import { createRedisState } from "../../lib/state/redis";
import type { SharedState } from "../../lib/state";
import { insertRows, type SqlValue } from "../../lib/db/raw";
import { appendEvents, headSeq } from "../../services/broker/event-log";
import { pruneFinishedDeliveries } from "../../services/delivery/retention";
import { normalizeUpdate } from "../../services/ingest/normalize";
import { SHARED_CHAT_CACHE_TTL_MS, storeUpdates, type ChatCache, type IncomingUpdate } from "../../services/ingest/store";
import { insertBot, insertChat } from "../support/database";
import { RETENTION_DAYS, seedDeliveries, storedDeliveries } from "../support/retention";
import { expectedMessagesUpdates, keptRows, messagesUpdates, SCENARIO_CONFIG, seedAgedRows, storedRows } from "../support/table-retention";
import { refreshTokensRetention, securityEventsRetention } from "../../services/auth/retention";
import { eventsRetention } from "../../services/broker/retention";
import { telegramUpdatesRetention } from "../../services/ingest/retention";
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

	it("a migration of another database on the same server does not hold this one up (the lock is named after the database)", async () => {
		const otherName = `${name}_other`;
		const otherCluster = await openDatabase(await createDatabase(otherName));
		try {
			// What another cluster's node holds while it migrates its own database.
			await otherCluster.sequelize.transaction(async (t) => {
				const [rows] = await otherCluster.sequelize.query(`SELECT GET_LOCK(${MIGRATION_LOCK_SQL}, 1) AS locked`, { transaction: t });
				expect((rows as Array<{ locked: number }>)[0]?.locked).toBe(1);
				const started = Date.now();
				expect(await migrateUp(db)).toEqual([]);
				expect(Date.now() - started).toBeLessThan(5_000);
				await otherCluster.sequelize.query(`SELECT RELEASE_LOCK(${MIGRATION_LOCK_SQL})`, { transaction: t });
			});
		} finally {
			await otherCluster.close();
			await dropDatabase(otherName);
		}
	});

	it("every table is utf8mb4 and InnoDB; emoji round-trip", async () => {
		const tables = await db.sequelize.query<{ TABLE_NAME: string; TABLE_COLLATION: string; ENGINE: string }>(
			"SELECT TABLE_NAME, TABLE_COLLATION, ENGINE FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME <> 'schema_migrations'",
			{ type: QueryTypes.SELECT },
		);
		expect(tables.length).toBe(21);
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

	// MariaDB hands inserted ids back with INSERT ... RETURNING; MySQL has none and reads them back.
	const INSERT_PATHS = [
		["INSERT ... RETURNING", true],
		["INSERT then SELECT (MySQL)", false],
	] as const;
	const withReturning = (node: Database, returning: boolean): Database => ({ ...node, returning: returning && node.returning });

	it("the server is told apart: MariaDB from 10.5 has INSERT ... RETURNING", async () => {
		const [row] = await db.sequelize.query<{ version: string }>("SELECT VERSION() AS version", { type: QueryTypes.SELECT });
		expect(db.returning).toBe(/mariadb/i.test(row!.version));
	});

	it.each(INSERT_PATHS)("ingest batches from three connections at once, overlapping (%s): each update stored once, the log gap-free, no deadlock", async (_path, returning) => {
		const opened = [await openDatabase(`${MYSQL_URL}/${name}`), await openDatabase(`${MYSQL_URL}/${name}`)];
		const nodes = [db, ...opened].map((node) => withReturning(node, returning));
		try {
			const bot = await insertBot(db);
			const incoming = (updateId: number): IncomingUpdate => {
				// Chats shared between batches, some new: their upserts meet under the sequence lock.
				const chat = 700 + (updateId % 7);
				const body = {
					update_id: updateId,
					message: { message_id: updateId, date: 1_700_000_000, chat: { id: chat, type: "private", first_name: `C${chat}` }, text: `m${updateId}` },
				};
				return { botId: bot.id, update: normalizeUpdate(body), raw: JSON.stringify(body) };
			};
			const before = await headSeq(db);
			// 60 batches of 8 over 200 update ids, in shuffled orders: most updates arrive more than once.
			let state = 42;
			const random = () => (state = (state * 1_103_515_245 + 12_345) % 2 ** 31) / 2 ** 31;
			const batches = Array.from({ length: 60 }, () => Array.from({ length: 8 }, () => 1 + Math.floor(random() * 200)));
			const caches = nodes.map(() => new Map());
			const results = await Promise.all(batches.map((ids, i) => storeUpdates(nodes[i % 3]!, ids.map(incoming), caches[i % 3]!)));

			const distinct = new Set(batches.flat());
			const events = results.flatMap((r) => r.events);
			expect(results.flatMap((r) => r.duplicates).filter((d) => !d)).toHaveLength(distinct.size);
			expect(events.map((e) => e.seq).sort((a, b) => a - b)).toEqual(Array.from({ length: distinct.size }, (_, i) => before + i + 1));
			expect(new Set(events.map((e) => e.message?.text)).size).toBe(distinct.size);
			expect(await headSeq(db)).toBe(before + distinct.size);
			const [row] = await db.sequelize.query<{ n: number }>("SELECT COUNT(*) AS n FROM telegram_updates WHERE bot_id = ?", { type: QueryTypes.SELECT, replacements: [bot.id] });
			expect(Number(row!.n)).toBe(distinct.size);
		} finally {
			await Promise.all(opened.map((node) => node.close()));
		}
	});

	it.each(INSERT_PATHS)("a message Telegram sends again under another update_id is stored once, and both updates get their event: the new one a new_message, the redelivery an `update` (%s)", async (_path, returning) => {
		const node = withReturning(db, returning);
		const bot = await insertBot(db);
		const incoming = (updateId: number, messageId: number): IncomingUpdate => {
			const body = { update_id: updateId, message: { message_id: messageId, date: 1_700_000_000, chat: { id: 5151, type: "private", first_name: "R" }, text: `m${messageId}` } };
			return { botId: bot.id, update: normalizeUpdate(body), raw: JSON.stringify(body) };
		};
		const first = await storeUpdates(node, [incoming(1, 1), incoming(2, 2)], new Map());
		const again = await storeUpdates(node, [incoming(3, 2), incoming(4, 3), incoming(5, 1)], new Map());
		expect(again.duplicates).toEqual([false, false, false]);
		const ids = (events: typeof first.events) => events.map((e) => [e.type, e.message?.text ?? (e.update as { message: { text: string } }).message.text, e.message?.id]);
		expect(ids(first.events)).toEqual([["new_message", "m1", expect.any(Number)], ["new_message", "m2", expect.any(Number)]]);
		// The stored message is not fanned out again as new (services/ingest/message-store.ts).
		expect(ids(again.events)).toEqual([["update", "m2", undefined], ["new_message", "m3", expect.any(Number)], ["update", "m1", undefined]]);
		const [row] = await db.sequelize.query<{ n: number }>("SELECT COUNT(*) AS n FROM messages WHERE bot_id = ?", { type: QueryTypes.SELECT, replacements: [bot.id] });
		expect(Number(row!.n)).toBe(3);
	});

	it("a chat another node committed after this batch's first read is still found (no snapshot from before the wait hides it), and its message stored", async () => {
		const [b, c, holder] = await Promise.all([1, 2, 3].map(() => openDatabase(`${MYSQL_URL}/${name}`)));
		try {
			const bot = await insertBot(db);
			const incoming = (updateId: number): IncomingUpdate => {
				const body = { update_id: updateId, message: { message_id: updateId, date: 1_700_000_000, chat: { id: 4242, type: "private", first_name: "Same" }, text: `t${updateId}` } };
				return { botId: bot.id, update: normalizeUpdate(body), raw: JSON.stringify(body) };
			};
			// Holding the sequence row makes both batches take their snapshot first, then wait for it;
			// the first to get it creates the chat and commits, and the second's upsert of it changes nothing.
			let release!: () => void;
			const locked = new Promise<void>((resolve) => {
				void holder.transaction(async (t) => {
					await holder.sequelize.query("SELECT value FROM sequences WHERE name = 'events' FOR UPDATE", { transaction: t });
					resolve();
					await new Promise<void>((done) => (release = done));
				});
			});
			await locked;
			const stores = [storeUpdates(b, [incoming(1)], new Map()), storeUpdates(c, [incoming(2)], new Map())];
			const waitingForLock = async () => {
				const [row] = await db.sequelize.query<{ n: number }>(
					"SELECT COUNT(*) AS n FROM information_schema.PROCESSLIST WHERE db = DATABASE() AND info LIKE 'UPDATE sequences%'",
					{ type: QueryTypes.SELECT },
				);
				return Number(row!.n);
			};
			for (let i = 0; i < 100 && (await waitingForLock()) < 2; i++) await new Promise((r) => setTimeout(r, 20));
			expect(await waitingForLock()).toBe(2);
			release();
			const events = (await Promise.all(stores)).flatMap((r) => r.events);
			expect(events.map((e) => [e.type, e.message?.text]).sort()).toEqual([
				["new_message", "t1"],
				["new_message", "t2"],
			]);
			expect(new Set(events.map((e) => e.chat_id)).size).toBe(1);
			expect(events[0]!.chat_id).toEqual(expect.any(Number));
		} finally {
			await Promise.all([b, c, holder].map((node) => node!.close()));
		}
	});

	it("a chat another node renamed is renamed back here: this node's cached details are trusted for a few seconds only", async () => {
		const bot = await insertBot(db);
		const titled = (updateId: number, title: string): IncomingUpdate => {
			const body = { update_id: updateId, message: { message_id: updateId, date: 1_700_000_000 + updateId, chat: { id: -7777, type: "group", title }, text: title } };
			return { botId: bot.id, update: normalizeUpdate(body), raw: JSON.stringify(body) };
		};
		const [nodeA, nodeB]: ChatCache[] = [new Map(), new Map()];
		await storeUpdates(db, [titled(1, "Alpha")], nodeA);
		await storeUpdates(db, [titled(2, "Beta")], nodeB);
		// Node A's entry (Alpha) ages past the window; the group is renamed back to Alpha, on node A.
		for (const entry of nodeA.values()) entry.learnedAt -= SHARED_CHAT_CACHE_TTL_MS + 1;
		await storeUpdates(db, [titled(3, "Alpha")], nodeA);
		const [row] = await db.sequelize.query<{ title: string }>("SELECT title FROM chats WHERE bot_id = ? AND telegram_id = -7777", { type: QueryTypes.SELECT, replacements: [bot.id] });
		expect(row!.title).toBe("Alpha");
	});

	it("skipping duplicates skips only duplicates: a row whose foreign key points nowhere fails the batch, nothing stored", async () => {
		const bot = await insertBot(db);
		const now = new Date();
		const update = (id: number, botId: number) => [botId, id, "message", "{}", "probe", now];
		const insert = (rows: SqlValue[][]) =>
			db.transaction((t) => insertRows(db, t, "telegram_updates", ["bot_id", "update_id", "kind", "payload", "batch_id", "received_at"], rows, { ignoreDuplicates: true }));
		await insert([update(1, bot.id)]);
		await expect(insert([update(1, bot.id), update(2, bot.id), update(3, 987_654_321)])).rejects.toThrow(/foreign key constraint fails/i);
		const rows = await db.sequelize.query<{ update_id: number }>("SELECT update_id FROM telegram_updates WHERE batch_id = 'probe' ORDER BY update_id", { type: QueryTypes.SELECT });
		expect(rows.map((row) => Number(row.update_id))).toEqual([1]);
	});

	it("the delivery log retention removes finished deliveries past it, with their attempts, and keeps the rest", async () => {
		const { webhookId, kept } = await seedDeliveries(db);
		const cutoff = new Date(Date.now() - RETENTION_DAYS * 24 * 60 * 60_000);
		expect(await pruneFinishedDeliveries(db, cutoff, { batch: 2 })).toBe(3);
		expect(await storedDeliveries(db, webhookId)).toEqual({ deliveries: kept, attemptsOf: kept });
	});

	it("the tables' retention jobs remove what is past each one's retention, in batches, and keep the rest (updates' messages stay)", async () => {
		const seeded = await seedAgedRows(db);
		for (const job of [telegramUpdatesRetention, securityEventsRetention, refreshTokensRetention, eventsRetention]) {
			expect(await job.prune(db, job.cutoff(SCENARIO_CONFIG, Date.now())!, { batch: 1 })).toBe(2);
		}
		expect(await storedRows(db, seeded)).toEqual(keptRows(seeded));
		expect(await messagesUpdates(db, seeded)).toEqual(expectedMessagesUpdates(seeded));
	});

	it.each(INSERT_PATHS)("an update_id stored before the de-duplication window is stored again as a new update; one within it is a duplicate (%s)", async (_path, returning) => {
		const node = withReturning(db, returning);
		const bot = await insertBot(db);
		const incoming = (updateId: number, messageId: number): IncomingUpdate => {
			const body = { update_id: updateId, message: { message_id: messageId, date: 1_700_000_000, chat: { id: 6161, type: "private", first_name: "W" }, text: `w${messageId}` } };
			return { botId: bot.id, update: normalizeUpdate(body), raw: JSON.stringify(body) };
		};
		const window = { dedupWindowMs: 72 * 60 * 60_000 };
		await storeUpdates(node, [incoming(1, 1), incoming(2, 2)], new Map(), window);
		await db.sequelize.query("UPDATE telegram_updates SET received_at = ? WHERE bot_id = ? AND update_id = 1", { replacements: [new Date(Date.now() - 73 * 60 * 60_000), bot.id] });
		await db.sequelize.query("UPDATE telegram_updates SET received_at = ? WHERE bot_id = ? AND update_id = 2", { replacements: [new Date(Date.now() - 71 * 60 * 60_000), bot.id] });
		const again = await storeUpdates(node, [incoming(1, 10), incoming(2, 2), incoming(3, 3)], new Map(), window);
		expect(again.duplicates).toEqual([false, true, false]);
		expect(again.events.map((e) => e.message?.text)).toEqual(["w10", "w3"]);
		const rows = await db.sequelize.query<{ text: string; update_row_id: number | null }>("SELECT text, update_row_id FROM messages WHERE bot_id = ? ORDER BY id", { type: QueryTypes.SELECT, replacements: [bot.id] });
		expect(rows.map((r) => [r.text, r.update_row_id === null])).toEqual([
			["w1", true],
			["w2", false],
			["w10", false],
			["w3", false],
		]);
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
		for (let i = 0; i < 5; i++) results.push(await (i % 2 ? a : b).takeSlots([{ key: "slots", limit: 3, windowMs: 400 }]));
		expect(results.map((r) => r.allowed)).toEqual([true, true, true, false, false]);
		expect(results[3]!.retryAfterMs).toBeGreaterThan(0);
		expect(results[3]!.retryAfterMs).toBeLessThanOrEqual(400);
		await new Promise((r) => setTimeout(r, 420));
		expect((await a.takeSlots([{ key: "slots", limit: 3, windowMs: 400 }])).allowed).toBe(true);
	});

	it("one window counter", async () => {
		await a.hit("win", 60_000);
		expect((await b.hit("win", 60_000)).count).toBe(2);
		expect((await a.peekWindow("win")).count).toBe(2);
	});

	it("one lease holder at a time; it passes on after expiry", async () => {
		expect(await a.acquireLease("lease", "node-a", 300)).toBe(true);
		expect(await b.acquireLease("lease", "node-b", 300)).toBe(false);
		expect(await a.renewLeases(["lease"], "node-a", 300)).toEqual([true]);
		await new Promise((r) => setTimeout(r, 350));
		expect(await b.acquireLease("lease", "node-b", 300)).toBe(true);
		expect(await a.renewLeases(["lease"], "node-a", 300)).toEqual([false]);
		await a.releaseLease("lease", "node-a");
		expect(await b.renewLeases(["lease"], "node-b", 300)).toEqual([true]);
	});

	it("renews many leases in one call: each one its owner still holds, not the others", async () => {
		expect(await a.acquireLease("many-1", "node-a", 300)).toBe(true);
		expect(await a.acquireLease("many-2", "node-a", 300)).toBe(true);
		expect(await b.acquireLease("many-3", "node-b", 300)).toBe(true);
		expect(await a.renewLeases(["many-1", "many-2", "many-3", "many-free"], "node-a", 1_000)).toEqual([true, true, false, false]);
		await new Promise((r) => setTimeout(r, 350));
		// Node A's were extended: still its own past their first 300 ms. Node B's was not: it ran out.
		expect(await b.acquireLease("many-1", "node-b", 300)).toBe(false);
		expect(await b.acquireLease("many-2", "node-b", 300)).toBe(false);
		expect(await a.acquireLease("many-3", "node-a", 300)).toBe(true);
		expect(await a.renewLeases([], "node-a", 1_000)).toEqual([]);
	});

	it("lease holders read in one go, whichever node asks: null where free or expired", async () => {
		expect(await a.acquireLease("held-1", "node-a", 300)).toBe(true);
		expect(await b.acquireLease("held-2", "node-b", 10_000)).toBe(true);
		expect(await b.leaseHolders(["held-1", "held-2", "held-3"])).toEqual(["node-a", "node-b", null]);
		await new Promise((r) => setTimeout(r, 350));
		await b.releaseLease("held-2", "node-b");
		expect(await a.leaseHolders(["held-1", "held-2"])).toEqual([null, null]);
		expect(await a.leaseHolders([])).toEqual([]);
	});
});
