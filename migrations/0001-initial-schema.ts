/**
 * The whole data model. Identifiers are the gateway's own; Telegram's ids live in telegram_* columns.
 * Every list and lookup of API.md has an index; every (bot, update_id) is stored once.
 */
import type { QueryInterface } from "sequelize";
import { addIndex, col, createTable, dropTable } from "../lib/db/migration-helpers";

type Step = { context: QueryInterface };

export async function up({ context: qi }: Step): Promise<void> {
	// --- identity -------------------------------------------------------------------------------
	await createTable(qi, "users", {
		id: col.id(),
		username: col.string(64, false),
		email: col.string(254),
		password_hash: col.string(255, false),
		is_active: col.bool(true),
		last_login_at: col.time(),
		created_at: col.time(false),
		updated_at: col.time(false),
	});
	await addIndex(qi, "users", ["username"], { unique: true });
	await addIndex(qi, "users", ["email"], { unique: true });

	await createTable(qi, "roles", { id: col.smallId(), name: col.string(32, false), description: col.string(255) });
	await addIndex(qi, "roles", ["name"], { unique: true });

	await createTable(qi, "permissions", { id: col.smallId(), name: col.string(64, false), description: col.string(255) });
	await addIndex(qi, "permissions", ["name"], { unique: true });

	await createTable(qi, "user_roles", {
		user_id: { ...col.ref("users"), primaryKey: true },
		role_id: { ...col.ref("roles", { type: "int" }), primaryKey: true },
	});
	await addIndex(qi, "user_roles", ["role_id"]);

	await createTable(qi, "role_permissions", {
		role_id: { ...col.ref("roles", { type: "int" }), primaryKey: true },
		permission_id: { ...col.ref("permissions", { type: "int" }), primaryKey: true },
	});
	await addIndex(qi, "role_permissions", ["permission_id"]);

	await createTable(qi, "refresh_tokens", {
		id: col.id(),
		user_id: col.ref("users"),
		family_id: col.string(64, false),
		token_hash: col.string(64, false),
		expires_at: col.time(false),
		used_at: col.time(),
		revoked_at: col.time(),
		revoked_reason: col.string(32),
		created_ip: col.string(64),
		user_agent: col.string(255),
		created_at: col.time(false),
	});
	await addIndex(qi, "refresh_tokens", ["token_hash"], { unique: true });
	await addIndex(qi, "refresh_tokens", ["family_id"]);
	await addIndex(qi, "refresh_tokens", ["user_id"]);
	await addIndex(qi, "refresh_tokens", ["expires_at"]);

	await createTable(qi, "api_keys", {
		id: col.id(),
		user_id: col.ref("users"),
		name: col.string(100, false),
		prefix: col.string(16, false),
		key_hash: col.string(255, false),
		scopes: col.text(),
		rate_limit: col.int(),
		expires_at: col.time(),
		revoked_at: col.time(),
		last_used_at: col.time(),
		created_at: col.time(false),
		updated_at: col.time(false),
	});
	await addIndex(qi, "api_keys", ["prefix"], { unique: true });
	await addIndex(qi, "api_keys", ["user_id", "id"]);

	await createTable(qi, "security_events", {
		id: col.id(),
		type: col.string(64, false),
		// No foreign keys: the security log outlives the users and keys it mentions.
		user_id: col.bigint(),
		api_key_id: col.bigint(),
		ip: col.string(64),
		details: col.text(),
		created_at: col.time(false),
	});
	await addIndex(qi, "security_events", ["type", "created_at"]);
	await addIndex(qi, "security_events", ["created_at"]);

	// --- bots and chats -------------------------------------------------------------------------
	await createTable(qi, "bots", {
		id: col.id(),
		telegram_id: col.bigint(false),
		username: col.string(64, false),
		display_name: col.string(128),
		description: col.text(),
		token_ciphertext: col.text(false),
		webhook_secret_ciphertext: col.text(false),
		/** The encryption key id both ciphertexts were sealed with (see TOKEN_ENCRYPTION_KEYS). */
		key_id: col.string(32, false),
		webhook_path: col.string(64, false),
		mode: col.string(16, false),
		is_active: col.bool(true),
		polling_offset: { ...col.bigint(false), defaultValue: 0 },
		last_error: col.text(),
		created_by_user_id: col.ref("users", { nullable: true, onDelete: "SET NULL" }),
		created_at: col.time(false),
		updated_at: col.time(false),
	});
	await addIndex(qi, "bots", ["telegram_id"], { unique: true });
	await addIndex(qi, "bots", ["webhook_path"], { unique: true });
	await addIndex(qi, "bots", ["is_active"]);

	await createTable(qi, "chats", {
		id: col.id(),
		bot_id: col.ref("bots"),
		telegram_id: col.bigint(false),
		type: col.string(32, false),
		title: col.string(255),
		username: col.string(64),
		first_name: col.string(255),
		last_name: col.string(255),
		is_forum: { ...col.bool(false) },
		migrated_to_chat_id: col.bigint(),
		created_at: col.time(false),
		updated_at: col.time(false),
	});
	await addIndex(qi, "chats", ["bot_id", "telegram_id"], { unique: true });
	await addIndex(qi, "chats", ["bot_id", "id"]);

	await createTable(qi, "chat_permissions", {
		id: col.id(),
		chat_id: col.ref("chats"),
		user_id: col.ref("users", { nullable: true }),
		api_key_id: col.ref("api_keys", { nullable: true }),
		can_read: col.bool(false),
		can_send: col.bool(false),
		can_manage: col.bool(false),
		granted_by_user_id: col.ref("users", { nullable: true, onDelete: "SET NULL" }),
		created_at: col.time(false),
		updated_at: col.time(false),
	});
	// NULLs are distinct in unique indexes on both MySQL and SQLite: one grant per chat and principal.
	await addIndex(qi, "chat_permissions", ["chat_id", "user_id"], { unique: true });
	await addIndex(qi, "chat_permissions", ["chat_id", "api_key_id"], { unique: true });
	await addIndex(qi, "chat_permissions", ["user_id"]);
	await addIndex(qi, "chat_permissions", ["api_key_id"]);

	// --- updates, messages and the event log -----------------------------------------------------
	await createTable(qi, "telegram_updates", {
		id: col.id(),
		bot_id: col.ref("bots"),
		update_id: col.bigint(false),
		kind: col.string(64, false),
		payload: col.mediumText(false),
		/** Which ingest batch inserted the row: tells a batch which of its updates were new. */
		batch_id: col.string(32, false),
		received_at: col.time(false),
	});
	await addIndex(qi, "telegram_updates", ["bot_id", "update_id"], { unique: true });
	await addIndex(qi, "telegram_updates", ["received_at"]);

	await createTable(qi, "messages", {
		id: col.id(),
		/** The seq of the event that created the message; null while an outgoing one is queued. */
		seq: col.bigint(),
		bot_id: col.ref("bots"),
		chat_id: col.ref("chats"),
		telegram_message_id: col.bigint(),
		direction: col.string(8, false),
		type: col.string(32, false),
		text: col.text(),
		caption: col.text(),
		entities: col.text(),
		media: col.text(),
		from_telegram_id: col.bigint(),
		from_username: col.string(64),
		from_first_name: col.string(255),
		from_last_name: col.string(255),
		from_is_bot: { type: col.bool(false).type, allowNull: true },
		reply_to_message_id: col.bigint(),
		thread_id: col.bigint(),
		media_group_id: col.string(64),
		date: col.time(),
		edit_date: col.time(),
		status: col.string(16),
		error: col.text(),
		update_row_id: col.ref("telegram_updates", { nullable: true, onDelete: "SET NULL" }),
		sent_by: col.string(64),
		created_at: col.time(false),
		updated_at: col.time(false),
	});
	await addIndex(qi, "messages", ["chat_id", "telegram_message_id"], { unique: true });
	await addIndex(qi, "messages", ["chat_id", "seq"]);
	await addIndex(qi, "messages", ["bot_id", "seq"]);

	await createTable(qi, "message_edits", {
		id: col.id(),
		message_id: col.ref("messages"),
		seq: col.bigint(false),
		text: col.text(),
		caption: col.text(),
		entities: col.text(),
		media: col.text(),
		edit_date: col.time(),
		created_at: col.time(false),
	});
	await addIndex(qi, "message_edits", ["message_id", "seq"]);

	/** The durable per-bot send queue: one row per outgoing message until Telegram took it or it failed. */
	await createTable(qi, "outbound_queue", {
		message_id: { ...col.ref("messages"), primaryKey: true },
		bot_id: col.ref("bots"),
		chat_telegram_id: col.bigint(false),
		chat_kind: col.string(16, false),
		request: col.text(false),
		attempts: col.int(false, 0),
		next_attempt_at: col.time(false),
		lease_owner: col.string(128),
		lease_until: col.time(),
		last_error: col.text(),
		created_at: col.time(false),
	});
	await addIndex(qi, "outbound_queue", ["bot_id", "next_attempt_at"]);
	await addIndex(qi, "outbound_queue", ["next_attempt_at"]);

	await createTable(qi, "events", {
		/** Allocated from sequences('events') under its row lock, so seq order is commit order. */
		seq: { ...col.bigint(false), primaryKey: true },
		type: col.string(32, false),
		bot_id: col.bigint(),
		chat_id: col.bigint(),
		message_id: col.bigint(),
		payload: col.mediumText(false),
		created_at: col.time(false),
	});
	await addIndex(qi, "events", ["chat_id", "seq"]);
	await addIndex(qi, "events", ["bot_id", "seq"]);
	await addIndex(qi, "events", ["created_at"]);

	await createTable(qi, "sequences", {
		name: { ...col.string(64, false), primaryKey: true },
		value: { ...col.bigint(false), defaultValue: 0 },
	});

	// --- outbound webhooks ----------------------------------------------------------------------
	await createTable(qi, "webhooks", {
		id: col.id(),
		owner_user_id: col.ref("users", { nullable: true }),
		owner_api_key_id: col.ref("api_keys", { nullable: true }),
		url: col.string(2048, false),
		scope: col.string(16, false),
		bot_id: col.ref("bots", { nullable: true }),
		chat_ids: col.text(),
		reply_to_message_id: col.bigint(),
		event_types: col.text(),
		secret_ciphertext: col.text(false),
		previous_secret_ciphertext: col.text(),
		previous_secret_expires_at: col.time(),
		key_id: col.string(32, false),
		ordered: col.bool(false),
		max_concurrency: col.int(false, 8),
		is_active: col.bool(true),
		disabled_reason: col.string(255),
		created_at: col.time(false),
		updated_at: col.time(false),
	});
	await addIndex(qi, "webhooks", ["is_active"]);
	await addIndex(qi, "webhooks", ["owner_user_id", "id"]);
	await addIndex(qi, "webhooks", ["owner_api_key_id"]);
	await addIndex(qi, "webhooks", ["bot_id"]);

	await createTable(qi, "webhook_deliveries", {
		id: col.id(),
		webhook_id: col.ref("webhooks"),
		event_seq: col.bigint(false),
		event_type: col.string(32, false),
		chat_id: col.bigint(),
		status: col.string(16, false),
		attempts: col.int(false, 0),
		next_attempt_at: col.time(false),
		lease_owner: col.string(128),
		lease_until: col.time(),
		last_status_code: col.int(),
		last_error: col.string(1024),
		delivered_at: col.time(),
		created_at: col.time(false),
		updated_at: col.time(false),
	});
	await addIndex(qi, "webhook_deliveries", ["status", "next_attempt_at"]);
	await addIndex(qi, "webhook_deliveries", ["webhook_id", "id"]);
	await addIndex(qi, "webhook_deliveries", ["webhook_id", "chat_id", "event_seq"]);

	await createTable(qi, "webhook_attempts", {
		id: col.id(),
		delivery_id: col.ref("webhook_deliveries"),
		attempt: col.int(false),
		started_at: col.time(false),
		duration_ms: col.int(false),
		status_code: col.int(),
		error: col.string(1024),
		response_excerpt: col.text(),
	});
	await addIndex(qi, "webhook_attempts", ["delivery_id", "id"]);
}

export async function down({ context: qi }: Step): Promise<void> {
	for (const table of [
		"webhook_attempts",
		"webhook_deliveries",
		"webhooks",
		"sequences",
		"events",
		"outbound_queue",
		"message_edits",
		"messages",
		"telegram_updates",
		"chat_permissions",
		"chats",
		"bots",
		"security_events",
		"api_keys",
		"refresh_tokens",
		"role_permissions",
		"user_roles",
		"permissions",
		"roles",
		"users",
	]) {
		await dropTable(qi, table);
	}
}
