/**
 * Putting an outgoing message on the queue: the message row (status "queued") and its queue row in
 * one transaction. A client key (the POST's Idempotency-Key, prefixed with its principal) makes a
 * retried request return the message the first one queued instead of sending it twice. The key
 * names one message: sent again for another chat, or with another text, it is a conflict
 * (unique on its own since migration 0008). A chat Telegram upgraded to a supergroup takes no new
 * message (send-failure.ts: failures.chatMigrated), nor does a chat or bot whose queue is full
 * (queue-limits.ts).
 */
import { createHash } from "node:crypto";
import type { Database } from "../../lib/db/connection";
import { fail, GatewayError, type FieldProblem } from "../../lib/errors";
import { messageView, type MessageRow, type MessageView } from "../chats/views";
import { queueFullError, queuedCounts, type SendQueueLimits } from "./queue-limits";
import { failures } from "./send-failure";
import { chatIdOf } from "./send-records";

/** Telegram's limit on a message's text, counted after entities are parsed. */
export const TELEGRAM_TEXT_LIMIT = 4096;
/**
 * The longest raw text taken with a parse_mode. Markup does not count towards Telegram's limit, so
 * the raw text may be longer, and Telegram decides ("message is too long": the message fails). Four
 * times the limit leaves room for heavy markup (a link on every word) and keeps requests small.
 */
export const MAX_MARKUP_TEXT_LENGTH = 4 * TELEGRAM_TEXT_LIMIT;

/**
 * The most the text may take as JSON in the queued request: outbound_queue.request is a TEXT column
 * (64 KB on MySQL), and 16,384 characters that JSON escapes six bytes each (control characters) or
 * that take four bytes in UTF-8 would not fit (a 500 instead of a 400).
 */
const MAX_TEXT_JSON_BYTES = 60_000;

/** A text over Telegram's limit without a parse_mode (where raw and visible lengths are the same), or too large to queue; validators check the hard cap. */
export function textLengthProblem(text: string, parseMode: string | undefined): FieldProblem | null {
	if (Buffer.byteLength(JSON.stringify(text)) > MAX_TEXT_JSON_BYTES) {
		return { field: "text", message: `The 'text' field takes more than ${MAX_TEXT_JSON_BYTES} bytes as JSON (escaped control characters count six each).`, type: "stringMax" };
	}
	if (parseMode || text.length <= TELEGRAM_TEXT_LIMIT) return null;
	return {
		field: "text",
		message: `The 'text' field length must be less than or equal to ${TELEGRAM_TEXT_LIMIT} characters long without a parse_mode (${MAX_MARKUP_TEXT_LENGTH} with one, markup included).`,
		type: "stringMax",
	};
}

export interface EnqueueParams {
	chat_id: number;
	text: string;
	parse_mode?: "HTML" | "Markdown" | "MarkdownV2";
	reply_to_message_id?: number;
	disable_notification?: boolean;
	client_key?: string;
	/** Who asked: "user:1", "api_key:7". */
	sent_by: string;
}

/** What a send asked for, as a fingerprint: a client key sent again must come with the same. */
export function requestFingerprint(params: Pick<EnqueueParams, "text" | "parse_mode" | "reply_to_message_id" | "disable_notification">): string {
	const asked = [params.text, params.parse_mode ?? null, params.reply_to_message_id ?? null, params.disable_notification ?? null];
	return createHash("sha256").update(JSON.stringify(asked)).digest("hex");
}

/** The message an earlier request with this client key queued, if any; a different request with the key is a conflict. */
async function earlierWithKey(db: Database, chatId: number, clientKey: string, fingerprint: string): Promise<MessageView | null> {
	const earlier = await db.models.Message.findOne({ where: { client_key: clientKey }, raw: true });
	if (!earlier) return null;
	if (Number(earlier.chat_id) !== chatId) {
		throw fail.conflict("This Idempotency-Key was used for a message to another chat; use a new key for a new message");
	}
	// Messages queued before fingerprints were kept (migration 0007) have none: the key alone decides.
	if (earlier.client_request !== null && earlier.client_request !== fingerprint) {
		throw fail.conflict("This Idempotency-Key was used for a different message (text, parse_mode, reply_to_message_id or disable_notification); use a new key for a new message");
	}
	return messageView(earlier as unknown as MessageRow);
}

/** `limits`: the queue caps (config.sendQueueLimits); only tests and tools that fill a queue on purpose leave them out. */
export async function enqueueMessage(db: Database, params: EnqueueParams, limits?: SendQueueLimits): Promise<{ message: MessageView; created: boolean }> {
	const chat = await db.models.Chat.findByPk(params.chat_id, { raw: true });
	if (!chat) throw fail.notFound("Chat");
	const bot = await db.models.Bot.findByPk(chat.bot_id, { attributes: ["id", "is_active", "telegram_id", "username", "display_name"], raw: true });
	if (!bot?.is_active) throw fail.conflict("This chat's bot is deleted; it cannot send");
	const fingerprint = params.client_key ? requestFingerprint(params) : null;
	if (params.client_key) {
		const earlier = await earlierWithKey(db, Number(chat.id), params.client_key, fingerprint!);
		if (earlier) return { message: earlier, created: false };
	}
	if (chat.migrated_to_chat_id !== null && chat.migrated_to_chat_id !== undefined) {
		// Not sent to the supergroup on the client's behalf: its grants are its own.
		const migrateTo = Number(chat.migrated_to_chat_id);
		const refusal = failures.chatMigrated(migrateTo, await chatIdOf(db, Number(chat.bot_id), migrateTo));
		throw new GatewayError(refusal.code, refusal.message, { ...refusal.details });
	}
	const request: Record<string, unknown> = { chat_id: Number(chat.telegram_id), text: params.text };
	// A business account's chat: the message goes out on the account's behalf, in that chat.
	if (chat.business_connection_id) request.business_connection_id = chat.business_connection_id;
	if (params.parse_mode) request.parse_mode = params.parse_mode;
	if (params.disable_notification !== undefined) request.disable_notification = params.disable_notification;
	if (params.reply_to_message_id !== undefined) {
		request.reply_parameters = { message_id: params.reply_to_message_id, allow_sending_without_reply: true };
	}
	try {
		const message = await db.transaction(async (t) => {
			// Counted in the transaction: SQLite runs one at a time, so the cap is exact there; on MySQL
			// sends racing each other may each see room and overshoot it by a few.
			if (limits) {
				const full = queueFullError(await queuedCounts(db, Number(chat.id), Number(chat.bot_id), t), limits, chat.type === "private" ? "private" : "group");
				if (full) throw full;
			}
			const row = await db.models.Message.create(
				{
					seq: null,
					bot_id: Number(chat.bot_id),
					chat_id: Number(chat.id),
					telegram_message_id: null,
					direction: "outgoing",
					type: "text",
					text: params.text,
					caption: null,
					entities: null,
					media: null,
					// The bot is the sender; Telegram's answer confirms it when the message goes out.
					from_telegram_id: Number(bot.telegram_id),
					from_username: bot.username,
					from_first_name: bot.display_name,
					from_last_name: null,
					from_is_bot: true,
					reply_to_message_id: params.reply_to_message_id ?? null,
					thread_id: null,
					media_group_id: null,
					date: null,
					edit_date: null,
					status: "queued",
					error: null,
					update_row_id: null,
					sent_by: params.sent_by,
					client_key: params.client_key ?? null,
					client_request: fingerprint,
				},
				{ transaction: t },
			);
			await db.models.OutboundQueueItem.create(
				{
					message_id: row.id,
					bot_id: Number(chat.bot_id),
					chat_telegram_id: Number(chat.telegram_id),
					chat_kind: chat.type === "private" ? "private" : "group",
					request: JSON.stringify(request),
					next_attempt_at: new Date(),
					lease_owner: null,
					lease_until: null,
					last_error: null,
				},
				{ transaction: t },
			);
			return row;
		});
		return { message: messageView(message.get({ plain: true }) as MessageRow), created: true };
	} catch (err) {
		// Two requests with the same client key raced: the other one queued it.
		if ((err as Error).name === "SequelizeUniqueConstraintError" && params.client_key) {
			const earlier = await earlierWithKey(db, Number(chat.id), params.client_key, fingerprint!);
			if (earlier) return { message: earlier, created: false };
		}
		throw err;
	}
}
