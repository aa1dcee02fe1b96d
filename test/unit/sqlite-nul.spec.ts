/**
 * Sequelize's SQLite dialect writes WHERE values into the SQL inline, and SQLite reads a statement
 * only up to a NUL: lookups by a string holding one must still run, and find what bound parameters
 * stored (lib/db/sqlite-query.ts, inlinedNul).
 */
import { Op, QueryTypes } from "sequelize";
import type { Database } from "../../lib/db/connection";
import { inlinedNul } from "../../lib/db/sqlite-query";
import { insertBot, insertChat, migratedDatabase } from "../support/database";

describe("inlinedNul", () => {
	it("closes the literal around each NUL and concatenates char(0)", () => {
		expect(inlinedNul("SELECT 1 WHERE a = 'x\0y''s\0'")).toBe("SELECT 1 WHERE a = 'x'||char(0)||'y''s'||char(0)||''");
	});

	it("leaves SQL without a NUL as it is (the same string)", () => {
		const sql = "SELECT * FROM chats WHERE title = 'plain'";
		expect(inlinedNul(sql)).toBe(sql);
	});
});

describe("Sequelize lookups by a string holding NUL on SQLite", () => {
	let db: Database;
	const title = "before\0after ' OR 1=1 --";
	let chatId: number;

	beforeAll(async () => {
		db = await migratedDatabase();
		const bot = await insertBot(db);
		const chat = await insertChat(db, bot.id, 4242, "group");
		await chat.update({ title });
		chatId = chat.id;
		await insertChat(db, bot.id, 4243, "group");
	});
	afterAll(() => db.close());

	it("stores the NUL through a bound parameter (the value's length counts it)", async () => {
		const [row] = await db.sequelize.query<{ bytes: number }>("SELECT length(CAST(title AS BLOB)) AS bytes FROM chats WHERE id = ?", { replacements: [chatId], type: QueryTypes.SELECT });
		expect(row!.bytes).toBe(Buffer.byteLength(title));
	});

	// Not LIKE: SQLite's LIKE stops reading value and pattern at a NUL, so it cannot tell them apart.
	it("finds the row by equality and by IN, and only that row", async () => {
		expect((await db.models.Chat.findAll({ where: { title } })).map((c) => c.id)).toEqual([chatId]);
		expect((await db.models.Chat.findAll({ where: { title: { [Op.in]: [title, "other\0"] } } })).map((c) => c.id)).toEqual([chatId]);
		expect((await db.models.Chat.findAll({ where: { title: { [Op.in]: ["before\0", "before\0after"] } } })).map((c) => c.id)).toEqual([]);
	});

	it("does not match a value that differs only after the NUL", async () => {
		expect(await db.models.Chat.findAll({ where: { title: "before\0other" } })).toEqual([]);
		expect(await db.models.Chat.findAll({ where: { title: "before" } })).toEqual([]);
	});

	it("runs replacements holding a NUL", async () => {
		const rows = await db.sequelize.query<{ id: number }>("SELECT id FROM chats WHERE title = :title", { replacements: { title }, type: QueryTypes.SELECT });
		expect(rows.map((r) => r.id)).toEqual([chatId]);
	});
});
