/**
 * The hot-path SQL helpers on a file SQLite database: multi-row inserts that travel as one JSON
 * parameter must store exactly what binding each value stores (and fall back to binding where JSON
 * cannot carry a value), and statements kept prepared on the write connection must reuse, fail,
 * evict and close cleanly.
 */
import { join } from "node:path";
import { QueryTypes, type Transaction } from "sequelize";
import type { Database as SqliteConnection } from "sqlite3";
import type { Database } from "../../lib/db/connection";
import { all, insertReturning, insertRows, run, type SqlValue } from "../../lib/db/raw";
import { keptCount, MAX_STATEMENTS } from "../../lib/db/sqlite-statements";
import { migratedDatabase } from "../support/database";
import { tempDir } from "../support/harness";

const COLUMNS = ["n", "r", "flag", "label", "at"] as const;

async function createProbeTables(db: Database): Promise<void> {
	for (const table of ["probe_json", "probe_bound"]) {
		await db.sequelize.query(`CREATE TABLE ${table} (id INTEGER PRIMARY KEY AUTOINCREMENT, n INTEGER, r REAL, flag TINYINT(1), label TEXT, at DATETIME, UNIQUE (n))`);
	}
}

/** Each row bound value by value: what the JSON path must match. */
async function insertBound(db: Database, t: Transaction, rows: SqlValue[][]): Promise<void> {
	for (const row of rows) await run(db, t, `INSERT INTO probe_bound (${COLUMNS.join(", ")}) VALUES (?, ?, ?, ?, ?)`, row);
}

const stored = (db: Database, table: string) =>
	db.transaction((t) =>
		all<Record<string, unknown>>(db, t, `SELECT n, typeof(n) AS tn, r, typeof(r) AS tr, flag, typeof(flag) AS tf, label, typeof(label) AS tl, length(CAST(label AS BLOB)) AS bytes, at FROM ${table} ORDER BY id`),
	);

const connectionOf = (t: Transaction) => (t as unknown as { connection: SqliteConnection }).connection;

describe("SQLite hot-path SQL", () => {
	let db: Database;

	beforeAll(async () => {
		db = await migratedDatabase(`sqlite:${join(tempDir(), "raw.sqlite")}`);
		await createProbeTables(db);
	});
	afterAll(() => db.close());

	beforeEach(async () => {
		await db.sequelize.query("DELETE FROM probe_json");
		await db.sequelize.query("DELETE FROM probe_bound");
	});

	const at = new Date("2026-12-05T01:02:03.456Z");
	const ordinary: SqlValue[][] = [
		[0, 1.5, true, "plain", at],
		[-5, -0.25, false, "emoji 😀, quotes ' \" and a backslash \\", null],
		[Number.MAX_SAFE_INTEGER, 2, null, "' OR 1=1 --", at],
		[42, null, true, null, at],
		[7, 1e300, false, "literal \\u0000 text (escaped backslash, no NUL)", at],
	];

	it("stores every kind of value from a JSON batch exactly as binding each value stores it", async () => {
		await db.transaction(async (t) => {
			await insertRows(db, t, "probe_json", COLUMNS, ordinary);
			await insertBound(db, t, ordinary);
		});
		const viaJson = await stored(db, "probe_json");
		expect(viaJson).toHaveLength(ordinary.length);
		expect(viaJson).toEqual(await stored(db, "probe_bound"));
		expect(viaJson[2]).toMatchObject({ n: Number.MAX_SAFE_INTEGER, tn: "integer", flag: null, label: "' OR 1=1 --" });
		expect(viaJson[0]).toMatchObject({ flag: 1, tf: "integer", r: 1.5, tr: "real", at: "2026-12-05 01:02:03.456 +00:00" });
	});

	it("writes times as Sequelize does, in every year a Date can hold", async () => {
		const times = [new Date(0), new Date(-1), new Date("9999-12-31T23:59:59.999Z"), new Date("+010000-01-01T00:00:00.000Z")];
		await db.transaction((t) => insertRows(db, t, "probe_json", COLUMNS, times.map((time, i) => [i, 0, false, "t", time])));
		expect((await stored(db, "probe_json")).map((row) => row.at)).toEqual([
			"1970-01-01 00:00:00.000 +00:00",
			"1969-12-31 23:59:59.999 +00:00",
			"9999-12-31 23:59:59.999 +00:00",
			"+010000-01-01 00:00:00.000 +00:00",
		]);
	});

	it("binds value by value when a string holds what JSON would lose (NUL, lone surrogate)", async () => {
		const awkward: SqlValue[][] = [
			[1, 0, true, "before\u0000after", at],
			[2, 0, false, "lone \ud800 surrogate", at],
			[3, 0, false, "fine", at],
		];
		await db.transaction(async (t) => {
			await insertRows(db, t, "probe_json", COLUMNS, awkward);
			await insertBound(db, t, awkward);
		});
		const viaJson = await stored(db, "probe_json");
		expect(viaJson).toEqual(await stored(db, "probe_bound"));
		expect(viaJson[0]).toMatchObject({ label: "before\u0000after", bytes: 12 });
	});

	it("returns only the rows a batch inserted when duplicates are skipped", async () => {
		const first = await db.transaction((t) => insertReturning<{ id: number; n: number }>(db, t, "probe_json", COLUMNS, [[1, 0, true, "a", at], [2, 0, true, "b", at]], "id, n"));
		const second = await db.transaction((t) =>
			insertReturning<{ id: number; n: number }>(db, t, "probe_json", COLUMNS, [[2, 0, true, "again", at], [3, 0, true, "c", at], [3, 0, true, "c twice", at]], "id, n", {
				ignoreDuplicates: true,
			}),
		);
		expect(first.map((row) => row.n).sort()).toEqual([1, 2]);
		expect(second.map((row) => row.n)).toEqual([3]);
		const labels = (await stored(db, "probe_json")).map((row) => row.label);
		expect(labels).toEqual(["a", "b", "c"]);
	});

	it.each([
		["sent as JSON", "fine"],
		["bound value by value", "NUL\u0000inside"],
	])("skipping duplicates skips only duplicates (%s): a row that breaks NOT NULL fails the batch, nothing stored", async (_how, label) => {
		await db.sequelize.query("CREATE TABLE IF NOT EXISTS probe_strict (id INTEGER PRIMARY KEY AUTOINCREMENT, n INTEGER UNIQUE, label TEXT NOT NULL)");
		await db.sequelize.query("DELETE FROM probe_strict");
		const insert = (rows: SqlValue[][]) => db.transaction((t) => insertRows(db, t, "probe_strict", ["n", "label"], rows, { ignoreDuplicates: true }));
		await insert([[1, label]]);
		await expect(insert([[1, label], [2, label], [3, null]])).rejects.toThrow(/NOT NULL constraint failed/);
		const rows = await db.sequelize.query<{ n: number }>("SELECT n FROM probe_strict ORDER BY n", { type: QueryTypes.SELECT });
		expect(rows.map((row) => row.n)).toEqual([1]);
	});

	it("rolls back a batch that breaks a constraint, and the kept statement works again afterwards", async () => {
		const failing = db.transaction((t) => insertRows(db, t, "probe_json", COLUMNS, [[9, 0, true, "x", at], [9, 0, true, "y", at]]));
		await expect(failing).rejects.toThrow(/UNIQUE constraint failed/);
		expect(await stored(db, "probe_json")).toEqual([]);
		await db.transaction((t) => insertRows(db, t, "probe_json", COLUMNS, [[9, 0, true, "x", at], [10, 0, true, "y", at]]));
		expect((await stored(db, "probe_json")).map((row) => row.n)).toEqual([9, 10]);
	});

	it("rawTransaction commits its work, or none of it when the work fails, and the writer carries on", async () => {
		await db.rawTransaction((t) => insertRows(db, t, "probe_json", COLUMNS, [[1, 0, true, "kept", at]]));
		const failing = db.rawTransaction(async (t) => {
			await insertRows(db, t, "probe_json", COLUMNS, [[2, 0, true, "undone", at]]);
			throw new Error("work failed");
		});
		await expect(failing).rejects.toThrow("work failed");
		await expect(db.rawTransaction((t) => insertRows(db, t, "probe_json", COLUMNS, [[1, 0, true, "duplicate", at]]))).rejects.toThrow(/UNIQUE/);
		// A Sequelize transaction on the same writer right after.
		await db.transaction((t) => insertRows(db, t, "probe_json", COLUMNS, [[3, 0, true, "after", at]]));
		expect((await stored(db, "probe_json")).map((row) => row.label)).toEqual(["kept", "after"]);
	});

	it("keeps one statement per SQL text on the write connection and reuses it", async () => {
		const connection = await db.transaction(async (t) => connectionOf(t));
		const before = keptCount(connection);
		for (let i = 0; i < 5; i++) await db.transaction((t) => all(db, t, "SELECT ? AS n", [i]));
		expect(keptCount(connection)).toBe(before + 1);
		const rows = await db.transaction((t) => all<{ n: number }>(db, t, "SELECT ? AS n", [17]));
		expect(rows).toEqual([{ n: 17 }]);
	});

	it("answers a statement that does not prepare with its error, not silence, and keeps nothing for it", async () => {
		const connection = await db.transaction(async (t) => connectionOf(t));
		const before = keptCount(connection);
		await expect(db.transaction((t) => all(db, t, "SELECT * FROM no_such_table"))).rejects.toThrow(/no such table/);
		expect(keptCount(connection)).toBe(before);
		// The transaction that failed was rolled back; the connection takes the next one.
		await db.transaction((t) => insertRows(db, t, "probe_json", COLUMNS, [[1, 0, true, "after", at]]));
		expect((await stored(db, "probe_json")).map((row) => row.label)).toEqual(["after"]);
	});

	it("bounds the kept statements, and two first uses at once keep one", async () => {
		const connection = await db.transaction(async (t) => connectionOf(t));
		await db.transaction(async (t) => {
			for (let i = 0; i < MAX_STATEMENTS + 20; i++) expect(await all(db, t, `SELECT ${i} AS n`)).toEqual([{ n: i }]);
		});
		expect(keptCount(connection)).toBe(MAX_STATEMENTS);
		const twice = await db.transaction((t) => Promise.all([all(db, t, "SELECT 'same' AS s"), all(db, t, "SELECT 'same' AS s")]));
		expect(twice).toEqual([[{ s: "same" }], [{ s: "same" }]]);
		expect(keptCount(connection)).toBe(MAX_STATEMENTS);
	});

	it("closes a database whose write connection keeps statements", async () => {
		const other = await migratedDatabase(`sqlite:${join(tempDir(), "close.sqlite")}`);
		const connection = await other.transaction(async (t) => {
			await all(other, t, "SELECT 1 AS one");
			return connectionOf(t);
		});
		expect(keptCount(connection)).toBeGreaterThan(0);
		await expect(other.close()).resolves.toBeUndefined();
		expect(keptCount(connection)).toBe(0);
	});
});
