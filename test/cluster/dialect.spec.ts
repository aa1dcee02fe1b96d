/**
 * Where MariaDB/MySQL would otherwise answer differently from SQLite (the embedded default, which
 * most tests run on): rows matched by an UPDATE, users' emails compared exactly, and times to the
 * millisecond.
 */
import { randomBytes } from "node:crypto";
import { openDatabase, type Database } from "../../lib/db/connection";
import { migrateDown, migrateUp } from "../../lib/db/migrator";
import { insertRows, run } from "../../lib/db/raw";
import { scheduleReplay } from "../../services/delivery/dispatcher";
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
		await migrateUp(db);
	});

	it("a webhook replay `since` a time starts at that millisecond, not at the start of its second", async () => {
		const early = new Date("2026-03-01T12:00:00.100Z");
		const late = new Date("2026-03-01T12:00:00.900Z");
		const event = (seq: number, at: Date) => [seq, "update", null, null, null, JSON.stringify({ type: "update", seq, bot_id: null, chat_id: null, created_at: at.toISOString() }), at];
		await db.rawTransaction((t) => insertRows(db, t, "events", ["seq", "type", "bot_id", "chat_id", "message_id", "payload", "created_at"], [event(901, early), event(902, late)]));
		const hook = await db.models.Webhook.create({ owner_user_id: null, owner_api_key_id: null, url: "https://example.com/h", scope: "all", secret_ciphertext: "x", key_id: "k" } as never);
		const audience = {
			rule: { id: Number(hook.id), scope: "all" as const, bot_id: null, chat_ids: null, reply_to_message_id: null, event_types: null, after_seq: null, created_at: new Date().toISOString() },
			access: { all: true, chats: new Set<number>() },
		};
		expect(await scheduleReplay(db, audience, { since: late }, 100)).toMatchObject({ scheduled: 1, last_seq: 902 });
	});
});
