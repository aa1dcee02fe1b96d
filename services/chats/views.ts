/** The API shapes of a chat and a message (API.md, "Shapes"), from their rows. */
import type { Chat, Message } from "../../lib/db/models";
import { iso } from "../../lib/time";
import { failureOf } from "../bots/send-failure";

type ChatRow = Pick<Chat, "id" | "bot_id" | "telegram_id" | "business_connection_id" | "type" | "title" | "username" | "first_name" | "last_name" | "is_forum" | "migrated_to_chat_id" | "created_at" | "updated_at">;

export function chatView(row: ChatRow) {
	return {
		id: Number(row.id),
		bot_id: Number(row.bot_id),
		telegram_id: Number(row.telegram_id),
		// A chat of a connected business account (null: the bot's own chat with that Telegram id).
		business_connection_id: row.business_connection_id || null,
		type: row.type,
		title: row.title,
		username: row.username,
		first_name: row.first_name,
		last_name: row.last_name,
		is_forum: Boolean(row.is_forum),
		migrated_to_chat_id: row.migrated_to_chat_id === null ? null : Number(row.migrated_to_chat_id),
		created_at: iso(row.created_at),
		updated_at: iso(row.updated_at),
	};
}

export type MessageRow = Pick<
	Message,
	| "id"
	| "seq"
	| "bot_id"
	| "chat_id"
	| "telegram_message_id"
	| "direction"
	| "type"
	| "text"
	| "caption"
	| "entities"
	| "media"
	| "from_telegram_id"
	| "from_username"
	| "from_first_name"
	| "from_last_name"
	| "from_is_bot"
	| "reply_to_message_id"
	| "thread_id"
	| "media_group_id"
	| "date"
	| "edit_date"
	| "status"
	| "error"
>;

function parseJson(text: string | null): unknown {
	if (text === null || text === undefined) return null;
	try {
		return JSON.parse(text);
	} catch {
		return null;
	}
}

const nullableNumber = (value: number | string | null) => (value === null || value === undefined ? null : Number(value));

export type MessageView = ReturnType<typeof messageView>;

export function messageView(row: MessageRow) {
	return {
		id: Number(row.id),
		seq: nullableNumber(row.seq),
		chat_id: Number(row.chat_id),
		bot_id: Number(row.bot_id),
		telegram_message_id: nullableNumber(row.telegram_message_id),
		direction: row.direction,
		type: row.type,
		text: row.text,
		caption: row.caption,
		entities: parseJson(row.entities),
		from:
			row.from_telegram_id === null || row.from_telegram_id === undefined
				? null
				: {
						telegram_id: Number(row.from_telegram_id),
						username: row.from_username,
						first_name: row.from_first_name,
						last_name: row.from_last_name,
						is_bot: Boolean(row.from_is_bot),
					},
		reply_to_message_id: nullableNumber(row.reply_to_message_id),
		thread_id: nullableNumber(row.thread_id),
		media_group_id: row.media_group_id,
		media: parseJson(row.media),
		date: iso(row.date),
		edit_date: iso(row.edit_date),
		status: row.status,
		...(row.status === "failed" ? failedFields(row.error) : {}),
	};
}

/**
 * Why a message failed: `error` in words, `error_details` for programs (telegram_error_code,
 * may_have_been_delivered, migrate_to_chat_id and new_chat_id, as far as they apply).
 */
function failedFields(column: string | null): { error: string | null; error_details: Record<string, unknown> } {
	const failure = failureOf(column);
	return { error: failure?.message ?? null, error_details: { ...failure?.details } };
}
