/**
 * Where MariaDB/MySQL would otherwise answer differently from SQLite (the embedded default, which
 * most tests run on): rows matched by an UPDATE, and users' emails compared exactly.
 */
import { randomBytes } from "node:crypto";
import { openDatabase, type Database } from "../../lib/db/connection";
import { migrateDown, migrateUp } from "../../lib/db/migrator";
import { run } from "../../lib/db/raw";
import { createDatabase, dropDatabase } from "./support/cluster";

describe("MariaDB/MySQL answers as SQLite does", () => {
	const name = `tgw_dialect_${randomBytes(3).toString("hex")}`;
	let db: Database;

	beforeAll(async () => {
		db = await openDatabase(await createDatabase(name));
		await migrateUp(db);
	});
	afterAll(async () => {
		await db?.close();
		await dropDatabase(name);
	});

	it("an UPDATE that writes the values already there counts the rows it matched (a compare-and-set succeeded)", async () => {
		const same = await db.rawTransaction((t) => run(db, t, "UPDATE sequences SET value = value WHERE name = 'events'"));
		expect(same.changes).toBe(1);
		const none = await db.rawTransaction((t) => run(db, t, "UPDATE sequences SET value = value WHERE name = 'no such row'"));
		expect(none.changes).toBe(0);
	});

	const user = (username: string, email: string) => {
		const now = new Date();
		return db.models.User.create({ username, email, password_hash: "x", is_active: true, created_at: now, updated_at: now });
	};

	it("emails that differ only in accents or letter forms are two users (one under the default collation)", async () => {
		await user("jose", "jose@example.com");
		await user("jose2", "josé@example.com");
		await user("strasse", "strasse@example.com");
		await user("strasse2", "straße@example.com");
		await expect(user("jose3", "jose@example.com")).rejects.toThrow();
	});

	it("0013's down refuses while such emails exist, and leaves them stored", async () => {
		await expect(migrateDown(db, { to: "0012-message-update-lookups" })).rejects.toThrow(/differ only in accents/);
		expect(await db.models.User.count()).toBe(4 + (await db.models.User.count({ where: { username: "admin" } })));
	});
});
