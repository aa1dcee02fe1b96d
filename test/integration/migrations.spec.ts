import { QueryTypes } from "sequelize";
import { openDatabase, type Database } from "../../lib/db/connection";
import { createMigrator, migrateDown, migrateUp } from "../../lib/db/migrator";
import * as initialSchema from "../../migrations/0001-initial-schema";
import * as seedRoles from "../../migrations/0002-seed-roles-and-sequences";
import { insertBot, insertChat } from "../support/database";

const TABLES = [
	"users",
	"roles",
	"permissions",
	"user_roles",
	"role_permissions",
	"refresh_tokens",
	"api_keys",
	"security_events",
	"bots",
	"chats",
	"chat_permissions",
	"telegram_updates",
	"messages",
	"message_edits",
	"outbound_queue",
	"events",
	"sequences",
	"webhooks",
	"webhook_deliveries",
	"webhook_attempts",
	"retired_api_key_secrets",
];

async function tables(db: Database): Promise<string[]> {
	const rows = await db.sequelize.query<{ name: string }>(
		"SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' AND name <> 'schema_migrations'",
		{ type: QueryTypes.SELECT },
	);
	return rows.map((r) => r.name).sort();
}

describe("migrations on SQLite", () => {
	let db: Database;
	beforeAll(async () => {
		db = await openDatabase("sqlite::memory:");
	});
	afterAll(() => db.close());

	it("create the whole data model", async () => {
		const applied = await migrateUp(db);
		expect(applied.map((m) => m.name)).toEqual(["0001-initial-schema", "0002-seed-roles-and-sequences", "0003-message-lookups", "0004-delivery-claims", "0005-delivery-schedule-restart", "0006-delivery-due-lookups", "0007-message-client-request", "0008-message-client-key-per-principal", "0009-chat-details-date", "0010-business-chats", "0011-mysql-large-messages", "0012-message-update-lookups", "0013-mysql-exact-emails", "0014-webhook-start-seq", "0015-retired-api-key-secrets", "0016-mysql-exact-business-connections"]);
		expect(await tables(db)).toEqual([...TABLES].sort());
	});

	it("are a no-op when run again", async () => {
		expect(await migrateUp(db)).toEqual([]);
		expect(await createMigrator(db).pending()).toEqual([]);
	});

	it("each step can run again over what it already did (a half-applied migration recovers)", async () => {
		const qi = db.sequelize.getQueryInterface();
		await initialSchema.up({ context: qi });
		await seedRoles.up({ context: qi });
		const [{ count }] = await db.sequelize.query<{ count: number }>("SELECT COUNT(*) AS count FROM roles", { type: QueryTypes.SELECT });
		expect(Number(count)).toBe(3);
	});

	it("seed the three roles with resource:action permissions, admin holding all", async () => {
		const rows = await db.sequelize.query<{ role: string; permission: string }>(
			`SELECT r.name AS role, p.name AS permission FROM role_permissions rp
			 JOIN roles r ON r.id = rp.role_id JOIN permissions p ON p.id = rp.permission_id`,
			{ type: QueryTypes.SELECT },
		);
		const byRole = (role: string) => rows.filter((r) => r.role === role).map((r) => r.permission).sort();
		const all = await db.sequelize.query<{ name: string }>("SELECT name FROM permissions", { type: QueryTypes.SELECT });
		expect(byRole("admin")).toEqual(all.map((p) => p.name).sort());
		expect(byRole("viewer")).toEqual(["chats:read", "messages:read"]);
		expect(byRole("operator")).toContain("bots:write");
		expect(byRole("operator")).not.toContain("users:write");
		for (const { name } of all) expect(name).toMatch(/^[a-z]+:[a-z]+$/);
	});

	it("keep (bot, update_id) unique and enforce foreign keys", async () => {
		const { Bot, TelegramUpdate, Chat } = db.models;
		const bot = await Bot.create({
			telegram_id: 42,
			username: "b",
			display_name: null,
			description: null,
			token_ciphertext: "c",
			webhook_secret_ciphertext: "s",
			key_id: "k",
			webhook_path: "p".repeat(64),
			mode: "webhook",
			last_error: null,
			created_by_user_id: null,
		});
		const row = { bot_id: bot.id, update_id: 7, kind: "message", payload: "{}", batch_id: "b1", received_at: new Date() };
		await TelegramUpdate.create(row);
		await expect(TelegramUpdate.create({ ...row, batch_id: "b2" })).rejects.toMatchObject({ name: "SequelizeUniqueConstraintError" });
		await expect(
			Chat.create({ bot_id: 9999, telegram_id: 1, type: "private", title: null, username: null, first_name: null, last_name: null, migrated_to_chat_id: null }),
		).rejects.toMatchObject({ name: "SequelizeForeignKeyConstraintError" });
	});

	it("round-trip emoji and other 4-byte characters", async () => {
		const user = await db.models.User.create({ username: "emoji 👍🏽 𝄞", email: null, password_hash: "x", last_login_at: null });
		const again = await db.models.User.findByPk(user.id);
		expect(again?.username).toBe("emoji 👍🏽 𝄞");
	});

	it("0005 down drops schedule_base and keeps the delivery log", async () => {
		const hook = await db.models.Webhook.create({ owner_user_id: null, owner_api_key_id: null, url: "https://example.com/h", scope: "all", secret_ciphertext: "x", key_id: "k" } as never);
		const delivery = await db.models.WebhookDelivery.create({ webhook_id: hook.id, event_seq: 1, event_type: "new_message", chat_id: null, status: "succeeded", attempts: 7, schedule_base: 6, next_attempt_at: new Date() } as never);
		await db.models.WebhookAttempt.create({ delivery_id: delivery.id, attempt: 7, started_at: new Date(), duration_ms: 5, status_code: 200, error: null, response_excerpt: null } as never);
		expect((await migrateDown(db, { step: 12 })).map((m) => m.name)).toEqual(["0016-mysql-exact-business-connections", "0015-retired-api-key-secrets", "0014-webhook-start-seq", "0013-mysql-exact-emails", "0012-message-update-lookups", "0011-mysql-large-messages", "0010-business-chats", "0009-chat-details-date", "0008-message-client-key-per-principal", "0007-message-client-request", "0006-delivery-due-lookups", "0005-delivery-schedule-restart"]);
		expect(Object.keys(await db.sequelize.getQueryInterface().describeTable("webhook_deliveries"))).not.toContain("schedule_base");
		expect(await db.models.WebhookAttempt.count({ where: { delivery_id: delivery.id } })).toBe(1);
		await migrateUp(db);
		const [row] = await db.sequelize.query<{ attempts: number; schedule_base: number }>("SELECT attempts, schedule_base FROM webhook_deliveries WHERE id = ?", { replacements: [delivery.id], type: QueryTypes.SELECT });
		expect(row).toEqual({ attempts: 7, schedule_base: 0 });
	});

	it("0006 swaps the delivery lookups for ones by status, and down swaps them back", async () => {
		const indexes = async () =>
			((await db.sequelize.getQueryInterface().showIndex("webhook_deliveries")) as Array<{ name: string }>)
				.map((i) => i.name)
				.filter((name) => name.startsWith("ix_webhook_deliveries_webhook_id_"))
				.sort();
		const after = ["ix_webhook_deliveries_webhook_id_chat_id_status_event_seq", "ix_webhook_deliveries_webhook_id_id", "ix_webhook_deliveries_webhook_id_status_next_attempt_at"];
		expect(await indexes()).toEqual(after);
		expect((await migrateDown(db, { step: 11 })).map((m) => m.name)).toEqual(["0016-mysql-exact-business-connections", "0015-retired-api-key-secrets", "0014-webhook-start-seq", "0013-mysql-exact-emails", "0012-message-update-lookups", "0011-mysql-large-messages", "0010-business-chats", "0009-chat-details-date", "0008-message-client-key-per-principal", "0007-message-client-request", "0006-delivery-due-lookups"]);
		expect(await indexes()).toEqual(["ix_webhook_deliveries_webhook_id_chat_id_event_seq", "ix_webhook_deliveries_webhook_id_id", "ix_webhook_deliveries_webhook_id_status_event_seq"]);
		await migrateUp(db);
		expect(await indexes()).toEqual(after);
	});

	it("0007 adds the messages' client_request fingerprint, and down drops it", async () => {
		const columns = async () => Object.keys(await db.sequelize.getQueryInterface().describeTable("messages"));
		expect(await columns()).toContain("client_request");
		expect((await migrateDown(db, { step: 10 })).map((m) => m.name)).toEqual(["0016-mysql-exact-business-connections", "0015-retired-api-key-secrets", "0014-webhook-start-seq", "0013-mysql-exact-emails", "0012-message-update-lookups", "0011-mysql-large-messages", "0010-business-chats", "0009-chat-details-date", "0008-message-client-key-per-principal", "0007-message-client-request"]);
		expect(await columns()).not.toContain("client_request");
		expect(await columns()).toContain("client_key");
		await migrateUp(db);
		expect(await columns()).toContain("client_request");
	});

	it("0007 and 0003 down keep every message, its edits, its queue row and the table's constraints", async () => {
		const bot = await insertBot(db);
		const chat = await insertChat(db, bot.id, 5);
		const message = (seq: number, telegramId: number) => ({ seq, bot_id: bot.id, chat_id: chat.id, telegram_message_id: telegramId, direction: "incoming", type: "text", text: `m${seq}` });
		const [first] = await Promise.all([db.models.Message.create(message(900_001, 1) as never), db.models.Message.create(message(900_002, 2) as never)]);
		await db.models.MessageEdit.create({ message_id: first!.id, seq: 900_003, text: "edited", edit_date: new Date() } as never);
		await db.models.OutboundQueueItem.create({ message_id: first!.id, bot_id: bot.id, chat_telegram_id: 5, chat_kind: "private", request: "{}", next_attempt_at: new Date() } as never);
		const counts = async () => [await db.models.Message.count(), await db.models.MessageEdit.count(), await db.models.OutboundQueueItem.count()];
		const before = await counts();

		expect((await migrateDown(db, { to: "0002-seed-roles-and-sequences" })).map((m) => m.name)).toContain("0003-message-lookups");
		expect(await counts()).toEqual(before);
		await migrateUp(db);
		expect(await counts()).toEqual(before);
		// Still one row per message, not one per chat: a third message in the same chat is stored.
		await db.models.Message.create(message(900_004, 3) as never);
		expect(await db.models.Message.count({ where: { chat_id: chat.id } })).toBe(3);
		const tablesNow = await tables(db);
		expect(tablesNow.filter((name) => name.endsWith("_backup"))).toEqual([]);
	});

	it("0008 makes a client key unique across chats (a key used for several keeps its first message), and down makes it unique per chat again", async () => {
		const bot = await insertBot(db);
		const [one, two] = [await insertChat(db, bot.id, 81), await insertChat(db, bot.id, 82)];
		const keyIndexes = async () =>
			((await db.sequelize.getQueryInterface().showIndex("messages")) as Array<{ name: string }>).map((i) => i.name).filter((name) => name.includes("client_key")).sort();
		expect(await keyIndexes()).toEqual(["uq_messages_client_key"]);
		expect((await migrateDown(db, { step: 9 })).map((m) => m.name)).toEqual(["0016-mysql-exact-business-connections", "0015-retired-api-key-secrets", "0014-webhook-start-seq", "0013-mysql-exact-emails", "0012-message-update-lookups", "0011-mysql-large-messages", "0010-business-chats", "0009-chat-details-date", "0008-message-client-key-per-principal"]);
		expect(await keyIndexes()).toEqual(["uq_messages_chat_id_client_key"]);
		const outgoing = (chatId: number, key: string) => db.models.Message.create({ bot_id: bot.id, chat_id: chatId, direction: "outgoing", type: "text", text: key, client_key: key } as never);
		const first = await outgoing(one.id, "user:1:twice");
		const later = await outgoing(two.id, "user:1:twice");
		await migrateUp(db);
		expect(await keyIndexes()).toEqual(["uq_messages_client_key"]);
		const keys = await db.models.Message.findAll({ where: { id: [first.id, later.id] }, order: [["id", "ASC"]], raw: true });
		expect(keys.map((m) => m.client_key)).toEqual(["user:1:twice", null]);
		await expect(outgoing(two.id, "user:1:twice")).rejects.toMatchObject({ name: "SequelizeUniqueConstraintError" });
	});

	it("0009 adds chats.details_date, and down drops it keeping every chat", async () => {
		const columns = async () => Object.keys(await db.sequelize.getQueryInterface().describeTable("chats"));
		const chats = await db.models.Chat.count();
		expect(await columns()).toContain("details_date");
		expect((await migrateDown(db, { step: 8 })).map((m) => m.name)).toEqual(["0016-mysql-exact-business-connections", "0015-retired-api-key-secrets", "0014-webhook-start-seq", "0013-mysql-exact-emails", "0012-message-update-lookups", "0011-mysql-large-messages", "0010-business-chats", "0009-chat-details-date"]);
		expect(await columns()).not.toContain("details_date");
		expect(await db.models.Chat.count()).toBe(chats);
		await migrateUp(db);
		expect(await columns()).toContain("details_date");
	});

	it("0010 makes a chat (bot, Telegram id, business connection), case-sensitively; down refuses while business chats exist", async () => {
		const bot = await insertBot(db);
		const chat = (connection: string) => db.models.Chat.create({ bot_id: bot.id, telegram_id: 456, business_connection_id: connection, type: "private" } as never);
		await chat("");
		await chat("bc-1");
		await chat("BC-1");
		await expect(chat("bc-1")).rejects.toMatchObject({ name: "SequelizeUniqueConstraintError" });
		const executed = async () => (await createMigrator(db).executed()).map((m) => m.name);
		const before = await executed();
		// Checked before anything is reverted: 0016..0011 stay as they were.
		await expect(migrateDown(db, { to: "0010-business-chats" })).rejects.toThrow(/nothing was reverted: 0010-business-chats: 2 chat\(s\) of business accounts/);
		expect(await executed()).toEqual(before);
		await db.models.Chat.destroy({ where: { bot_id: bot.id, telegram_id: 456, business_connection_id: ["bc-1", "BC-1"] } });
		expect((await migrateDown(db, { to: "0010-business-chats" })).map((m) => m.name)).toEqual(before.slice(before.indexOf("0010-business-chats")).reverse());
		const columns = Object.keys(await db.sequelize.getQueryInterface().describeTable("chats"));
		expect(columns).not.toContain("business_connection_id");
		await expect(db.sequelize.query(`INSERT INTO chats (bot_id, telegram_id, type, is_forum, created_at, updated_at) VALUES (${bot.id}, 456, 'private', 0, '2026-01-01', '2026-01-01')`)).rejects.toMatchObject({
			name: "SequelizeUniqueConstraintError",
		});
		await migrateUp(db);
		expect(await db.models.Chat.count({ where: { bot_id: bot.id, telegram_id: 456, business_connection_id: "" } })).toBe(1);
	});

	it("0012 indexes messages.update_row_id (removing old updates must not scan messages), and down drops it", async () => {
		const indexes = async () =>
			((await db.sequelize.getQueryInterface().showIndex("messages")) as Array<{ name: string }>).map((i) => i.name).filter((name) => name.includes("update_row_id"));
		expect(await indexes()).toEqual(["ix_messages_update_row_id"]);
		const [plan] = await db.sequelize.query<{ detail: string }>("EXPLAIN QUERY PLAN SELECT id FROM messages WHERE update_row_id = 1", { type: QueryTypes.SELECT });
		expect(plan!.detail).toMatch(/USING (COVERING )?INDEX ix_messages_update_row_id/);
		expect((await migrateDown(db, { step: 5 })).map((m) => m.name)).toEqual(["0016-mysql-exact-business-connections", "0015-retired-api-key-secrets", "0014-webhook-start-seq", "0013-mysql-exact-emails", "0012-message-update-lookups"]);
		expect(await indexes()).toEqual([]);
		await migrateUp(db);
		expect(await indexes()).toEqual(["ix_messages_update_row_id"]);
	});

	it("a down that would drop Idempotency-Keys or ended API key secrets refuses, reverting nothing, unless told to discard them", async () => {
		const bot = await insertBot(db);
		const chat = await insertChat(db, bot.id, 4_242);
		await db.models.Message.create({ bot_id: bot.id, chat_id: chat.id, direction: "outgoing", type: "text", text: "keyed", status: "sent", client_key: "user:1:key-1", sent_by: "user:1" } as never);
		await db.sequelize.query("INSERT INTO retired_api_key_secrets (prefix, key_hash, reason, retired_at) VALUES ('tgw_abcd', 'hash', 'revoked', '2026-01-01')");
		const executed = async () => (await createMigrator(db).executed()).map((m) => m.name);
		const before = await executed();
		await expect(migrateDown(db, { step: 2 })).rejects.toThrow(/nothing was reverted: .*0015-retired-api-key-secrets: the record of 1 API key secret.*--discard/);
		await expect(migrateDown(db, { to: "0003-message-lookups" })).rejects.toThrow(/0003-message-lookups: the Idempotency-Keys of \d+ message/);
		expect(await executed()).toEqual(before);
		expect((await migrateDown(db, { step: 2, discard: true })).map((m) => m.name)).toEqual(["0016-mysql-exact-business-connections", "0015-retired-api-key-secrets"]);
		await migrateUp(db);
	});

	it("go all the way down and up again", async () => {
		const reverted = await migrateDown(db, { to: 0, discard: true });
		expect(reverted.map((m) => m.name)).toEqual(["0016-mysql-exact-business-connections", "0015-retired-api-key-secrets", "0014-webhook-start-seq", "0013-mysql-exact-emails", "0012-message-update-lookups", "0011-mysql-large-messages", "0010-business-chats", "0009-chat-details-date", "0008-message-client-key-per-principal", "0007-message-client-request", "0006-delivery-due-lookups", "0005-delivery-schedule-restart", "0004-delivery-claims", "0003-message-lookups", "0002-seed-roles-and-sequences", "0001-initial-schema"]);
		expect(await tables(db)).toEqual([]);
		await migrateUp(db);
		expect(await tables(db)).toEqual([...TABLES].sort());
	});
});
