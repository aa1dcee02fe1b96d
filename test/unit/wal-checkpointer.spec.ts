/**
 * SQLite's checkpoints run beside the commits, not inside them: connections only checkpoint by
 * themselves past BACKSTOP_AUTOCHECKPOINT_PAGES, and the database's WalCheckpointer copies the log
 * back shortly after writes, so the log restarts instead of growing, and nothing runs while idle.
 */
import { closeSync, existsSync, openSync, statSync } from "node:fs";
import { join } from "node:path";
import { type Transaction } from "sequelize";
import type { Database as SqliteConnection } from "sqlite3";
import { openDatabase, type Database } from "../../lib/db/connection";
import { run } from "../../lib/db/raw";
import { BACKSTOP_AUTOCHECKPOINT_PAGES, WalCheckpointer, type CheckpointResult } from "../../lib/db/wal-checkpointer";
import { tempDir } from "../support/harness";

const PAGE = 4096;
const connectionOf = (t: Transaction) => (t as unknown as { connection: SqliteConnection }).connection;
const pragma = (connection: SqliteConnection, sql: string) =>
	new Promise<Record<string, number>>((resolve, reject) => connection.get(sql, (err: Error | null, row: Record<string, number>) => (err ? reject(err) : resolve(row))));

/**
 * Resolves with the first result of the database's own checkpoints (spied on the class) that
 * `wanted` accepts: a checkpoint set off by an earlier write may run first, on a slow machine.
 */
function checkpointWhere(wanted: (result: CheckpointResult) => boolean): Promise<CheckpointResult> {
	const original = WalCheckpointer.prototype.checkpoint;
	return new Promise((resolve) => {
		const spy = jest.spyOn(WalCheckpointer.prototype, "checkpoint").mockImplementation(function (this: WalCheckpointer) {
			const result = original.call(this);
			void result.then((r) => {
				if (!wanted(r)) return;
				spy.mockRestore();
				resolve(r);
			});
			return result;
		});
	});
}

/** The whole log, `pages` pages at least, copied back. */
const copiedBack = (pages: number) => (r: CheckpointResult) => r.log >= pages && r.checkpointed === r.log;

describe("WAL checkpoints off the commit path", () => {
	let dir: string;
	let file: string;
	let db: Database;

	beforeEach(async () => {
		dir = tempDir();
		file = join(dir, "wal.sqlite");
		db = await openDatabase(`sqlite:${file}`);
		await db.rawTransaction((t) => run(db, t, "CREATE TABLE blobs (id INTEGER PRIMARY KEY, body BLOB)"));
	});

	afterEach(async () => {
		jest.restoreAllMocks();
		await db.close();
	});

	const writeRows = (count: number) =>
		db.rawTransaction(async (t) => {
			for (let i = 0; i < count; i++) await run(db, t, "INSERT INTO blobs (body) VALUES (randomblob(?))", [PAGE]);
		});

	it("leaves the write connection's own checkpoint as a backstop only", async () => {
		const row = await db.rawTransaction((t) => pragma(connectionOf(t), "PRAGMA wal_autocheckpoint"));
		expect(row.wal_autocheckpoint).toBe(BACKSTOP_AUTOCHECKPOINT_PAGES);
		const reads = (await db.sequelize.query("PRAGMA wal_autocheckpoint", { plain: true })) as Record<string, number>;
		expect(reads.wal_autocheckpoint).toBe(BACKSTOP_AUTOCHECKPOINT_PAGES);
	});

	it("copies the whole log back shortly after a write", async () => {
		const checkpoint = checkpointWhere(copiedBack(20));
		await writeRows(20);
		// Waits (up to the test's timeout) for a checkpoint that copied the 20 pages and the rest.
		const result = await checkpoint;
		expect(result.checkpointed).toBe(result.log);
	});

	it("runs nothing while no write commits", async () => {
		const settled = checkpointWhere(copiedBack(1));
		await writeRows(1);
		await settled;
		const spy = jest.spyOn(WalCheckpointer.prototype, "checkpoint");
		await new Promise((r) => setTimeout(r, 400));
		await db.sequelize.query("SELECT COUNT(*) FROM blobs");
		await new Promise((r) => setTimeout(r, 300));
		expect(spy).not.toHaveBeenCalled();
	});

	it("keeps the log short under sustained writes: it restarts after each checkpoint instead of growing", async () => {
		// 12 rounds of 150 pages: 1,800 pages written, under the backstop, so only the checkpointer
		// can have let the log restart.
		for (let round = 0; round < 12; round++) {
			const checkpoint = checkpointWhere(copiedBack(150));
			await writeRows(150);
			await checkpoint;
		}
		const walPages = statSync(`${file}-wal`).size / PAGE;
		expect(walPages).toBeLessThan(2 * 150 + 50);
	});

	it("closes with the database, which then folds the log in and removes it", async () => {
		await writeRows(5);
		await db.close();
		expect(existsSync(`${file}-wal`)).toBe(false);
		db = await openDatabase(`sqlite:${file}`);
		const [row] = (await db.sequelize.query("SELECT COUNT(*) AS n FROM blobs", { plain: false })) as [Array<{ n: number }>, unknown];
		expect(row[0].n).toBe(5);
	});

	it("is not used for an in-memory database", async () => {
		const memory = await openDatabase("sqlite::memory:");
		const spy = jest.spyOn(WalCheckpointer.prototype, "noteWrite");
		await memory.rawTransaction((t) => run(memory, t, "CREATE TABLE x (id INTEGER)"));
		expect(spy).not.toHaveBeenCalled();
		await memory.close();
	});
});

describe("WalCheckpointer", () => {
	it("reports a connection it cannot open, and then leaves checkpoints to the backstop", async () => {
		const errors: Error[] = [];
		const checkpointer = new WalCheckpointer(join(tempDir(), "missing", "none.sqlite"), 10, (err) => errors.push(err));
		await new Promise((r) => setTimeout(r, 50));
		expect(errors.map((e) => e.message)).toEqual([expect.stringMatching(/SQLITE_CANTOPEN/)]);
		const spy = jest.spyOn(checkpointer, "checkpoint");
		checkpointer.noteWrite();
		await new Promise((r) => setTimeout(r, 50));
		expect(spy).not.toHaveBeenCalled();
		await checkpointer.close();
	});

	it("reports a checkpoint that fails, and tries again after the next write", async () => {
		const errors: Error[] = [];
		const file = join(tempDir(), "empty.sqlite");
		closeSync(openSync(file, "w"));
		const checkpointer = new WalCheckpointer(file, 10, (err) => errors.push(err));
		const spy = jest.spyOn(checkpointer, "checkpoint").mockRejectedValue(new Error("disk I/O error"));
		checkpointer.noteWrite();
		await new Promise((r) => setTimeout(r, 60));
		checkpointer.noteWrite();
		await new Promise((r) => setTimeout(r, 60));
		expect(spy).toHaveBeenCalledTimes(2);
		expect(errors.map((e) => e.message)).toEqual(["disk I/O error", "disk I/O error"]);
		await checkpointer.close();
	});
});
