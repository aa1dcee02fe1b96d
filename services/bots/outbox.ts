/**
 * Putting an outgoing message on the queue: the message row (status "queued") and its queue row in
 * one transaction. A client key (the POST's Idempotency-Key, prefixed with its principal) makes a
 * retried request return the message the first one queued instead of sending it twice. The key
 * names one message: sent again for another chat, or with another text, it is a conflict
 * (unique on its own since migration 0008). A chat Telegram upgraded to a supergroup takes no new
 * message (send-failure.ts: failures.chatMigrated), nor does a chat or bot whose queue is full
 * (queue-limits.ts).
 */
import type { ChatMigration } from "../ingest/chat-migration";
import { createHash } from "node:crypto";
import type { Database } from "../../lib/db/connection";
import { retryingConflicts } from "../../lib/db/conflicts";
import { groupCommitPer } from "../../lib/db/group-commit";
import { fail, GatewayError, isDuplicateKey, type FieldProblem } from "../../lib/errors";
import { messageView, type MessageRow, type MessageView } from "../chats/views";
import { insertReturning, insertRows, read, type SqlValue } from "../../lib/db/raw";
import { lockBotQueues, queueFullError, queuedCounts, type SendQueueLimits } from "./queue-limits";
import { failures } from "./send-failure";
import { chatIdOf } from "./send-records";
import { isTokenRefused, tokenRefusedError } from "./token-refusal";

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

type Asked = Pick<EnqueueParams, "text" | "parse_mode" | "reply_to_message_id" | "disable_notification">;

const fingerprintOf = (asked: unknown[]) => createHash("sha256").update(JSON.stringify(asked)).digest("hex");

/**
 * What a send asked for, as a fingerprint: a client key sent again must come with the same.
 * disable_notification false is Telegram's default, the same message as none (gRPC cannot tell them apart).
 */
export function requestFingerprint(params: Asked): string {
	return fingerprintOf([params.text, params.parse_mode ?? null, params.reply_to_message_id ?? null, params.disable_notification === true ? true : null]);
}

/** The fingerprints an earlier send of the same may carry: one with an explicit false kept it as such before it counted as none. */
function earlierFingerprints(params: Asked): string[] {
	const current = requestFingerprint(params);
	if (params.disable_notification === true) return [current];
	return [current, fingerprintOf([params.text, params.parse_mode ?? null, params.reply_to_message_id ?? null, false])];
}

/** The message an earlier request with this client key queued, if any; a different request with the key is a conflict. */
async function earlierWithKey(db: Database, chatId: number, clientKey: string, fingerprints: string[]): Promise<MessageView | null> {
	const earlier = await db.models.Message.findOne({ where: { client_key: clientKey }, raw: true });
	if (!earlier) return null;
	if (Number(earlier.chat_id) !== chatId) {
		throw fail.conflict("This Idempotency-Key was used for a message to another chat; use a new key for a new message", { header: "Idempotency-Key" });
	}
	// Messages queued before fingerprints were kept (migration 0007) have none: the key alone decides.
	if (earlier.client_request !== null && !fingerprints.includes(earlier.client_request)) {
		throw fail.conflict("This Idempotency-Key was used for a different message (text, parse_mode, reply_to_message_id or disable_notification); use a new key for a new message", { header: "Idempotency-Key" });
	}
	return messageView(earlier as unknown as MessageRow);
}

/** A chat with what sending to it needs of its bot, in one read. */
interface SendTarget {
	id: number;
	bot_id: number;
	telegram_id: number;
	type: string;
	business_connection_id: string | null;
	migrated_to_chat_id: number | null;
	bot_is_active: number | boolean | null;
	bot_telegram_id: number | null;
	bot_username: string | null;
	bot_display_name: string | null;
	bot_last_error: string | null;
}

async function sendTarget(db: Database, chatId: number): Promise<SendTarget | null> {
	const [row] = await read<SendTarget>(
		db,
		`SELECT c.id, c.bot_id, c.telegram_id, c.type, c.business_connection_id, c.migrated_to_chat_id,
		        b.is_active AS bot_is_active, b.telegram_id AS bot_telegram_id, b.username AS bot_username, b.display_name AS bot_display_name, b.last_error AS bot_last_error
		   FROM chats c LEFT JOIN bots b ON b.id = c.bot_id WHERE c.id = ?`,
		[chatId],
	);
	return row ?? null;
}

const MESSAGE_COLUMNS = [
	"seq", "bot_id", "chat_id", "telegram_message_id", "direction", "type", "text", "caption", "entities", "media",
	"from_telegram_id", "from_username", "from_first_name", "from_last_name", "from_is_bot", "reply_to_message_id", "thread_id",
	"media_group_id", "date", "edit_date", "status", "error", "update_row_id", "sent_by", "client_key", "client_request", "created_at", "updated_at",
] as const;

const QUEUE_COLUMNS = ["message_id", "bot_id", "chat_telegram_id", "chat_kind", "request", "attempts", "next_attempt_at", "lease_owner", "lease_until", "last_error", "created_at"] as const;

type MessageRecord = Record<(typeof MESSAGE_COLUMNS)[number], SqlValue> & { bot_id: number; chat_id: number };

interface PendingMessage {
	record: MessageRecord;
	queue: { chat_telegram_id: number; chat_kind: "private" | "group"; request: string };
	limits?: SendQueueLimits;
}

/** The new message's id, or why its queue has no room. */
type Enqueued = { id: number } | { refused: GatewayError };

/**
 * Messages are queued as group commits (lib/db/group-commit.ts): the sends that arrive while one
 * batch is written share the next transaction. A batch that fails (a client key used twice at once)
 * is written again one message at a time.
 */
const enqueuerOf = groupCommitPer(writeQueued);

async function writeQueued(db: Database, items: PendingMessage[]): Promise<Enqueued[]> {
	// A deadlock with another node's batch or an ingest (both lock the bots' rows) is run again.
	return retryingConflicts(() => db.rawTransaction(async (t) => {
		const limited = items.filter((item) => item.limits);
		const limitedBots = [...new Set(limited.map((item) => item.record.bot_id))];
		// Counted in the transaction. SQLite runs one at a time; on MySQL another node's batch could
		// count alongside this one and both queue past a cap, so the bots are locked first (lockBotQueues).
		if (limitedBots.length > 0) await lockBotQueues(db, t, limitedBots);
		const counts =
			limited.length === 0
				? { chat: new Map<number, number>(), bot: new Map<number, number>() }
				: await queuedCounts(db, t, [...new Set(limited.map((item) => item.record.chat_id))], limitedBots);
		const results: Enqueued[] = [];
		const queueRows: SqlValue[][] = [];
		for (const { record, queue, limits } of items) {
			const queued = { chat: counts.chat.get(record.chat_id) ?? 0, bot: counts.bot.get(record.bot_id) ?? 0 };
			const full = limits ? queueFullError(queued, limits, queue.chat_kind) : null;
			if (full) {
				results.push({ refused: full });
				continue;
			}
			// Every message queued counts towards the caps of those after it in the batch, capped or not.
			counts.chat.set(record.chat_id, queued.chat + 1);
			counts.bot.set(record.bot_id, queued.bot + 1);
			const values = [MESSAGE_COLUMNS.map((column) => record[column])];
			const id = db.returning
				? Number((await insertReturning<{ id: number }>(db, t, "messages", MESSAGE_COLUMNS, values, "id"))[0]!.id)
				: (await insertRows(db, t, "messages", MESSAGE_COLUMNS, values)).insertId;
			const row: Record<(typeof QUEUE_COLUMNS)[number], SqlValue> = {
				message_id: id,
				bot_id: record.bot_id,
				...queue,
				attempts: 0,
				next_attempt_at: record.created_at,
				lease_owner: null,
				lease_until: null,
				last_error: null,
				created_at: record.created_at,
			};
			queueRows.push(QUEUE_COLUMNS.map((column) => row[column]));
			results.push({ id });
		}
		await insertRows(db, t, "outbound_queue", QUEUE_COLUMNS, queueRows);
		return results;
		// The counts are read after waiting for another node's batch, and must see what it queued.
	}, { readCommitted: true }));
}

/**
 * `limits`: the queue caps (config.sendQueueLimits); only tests and tools that fill a queue on purpose
 * leave them out. Plain statements (lib/db/raw.ts), as ingest's: this runs for every message sent.
 */
export async function enqueueMessage(
	db: Database,
	params: EnqueueParams,
	limits?: SendQueueLimits,
	/** A send to a group that became a supergroup the bot has seen: the caller carries its grants over (ingest/chat-migration.ts). */
	chatMigrated?: (migration: ChatMigration) => Promise<void>,
): Promise<{ message: MessageView; created: boolean }> {
	const chat = await sendTarget(db, params.chat_id);
	if (!chat) throw fail.notFound("Chat");
	const botId = Number(chat.bot_id);
	const chatId = Number(chat.id);
	// A retry is answered with its message before anything that refuses new ones: a message sent
	// before its bot was deleted (or its token refused) is still sent, and the client must not be
	// told otherwise and send it again some other way.
	const fingerprint = params.client_key ? requestFingerprint(params) : null;
	if (params.client_key) {
		const earlier = await earlierWithKey(db, chatId, params.client_key, earlierFingerprints(params));
		if (earlier) return { message: earlier, created: false };
	}
	// A new message would only wait in a paused queue.
	if (chat.bot_is_active && isTokenRefused({ last_error: chat.bot_last_error })) throw tokenRefusedError(botId);
	if (!chat.bot_is_active) throw fail.conflict("This chat's bot is deleted; it cannot send");
	if (chat.migrated_to_chat_id !== null && chat.migrated_to_chat_id !== undefined) {
		// Not sent to the supergroup on the client's behalf: its grants are its own.
		const migrateTo = Number(chat.migrated_to_chat_id);
		const newChatId = await chatIdOf(db, botId, migrateTo);
		if (newChatId !== null) await chatMigrated?.({ botId, fromTelegramId: Number(chat.telegram_id), toTelegramId: migrateTo });
		const refusal = failures.chatMigrated(migrateTo, newChatId);
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
	const chatKind = chat.type === "private" ? "private" : "group";
	const now = new Date();
	const record: MessageRecord = {
		seq: null,
		bot_id: botId,
		chat_id: chatId,
		telegram_message_id: null,
		direction: "outgoing",
		type: "text",
		text: params.text,
		caption: null,
		entities: null,
		media: null,
		// The bot is the sender; Telegram's answer confirms it when the message goes out.
		from_telegram_id: chat.bot_telegram_id === null ? null : Number(chat.bot_telegram_id),
		from_username: chat.bot_username,
		from_first_name: chat.bot_display_name,
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
		created_at: now,
		updated_at: now,
	};
	try {
		const queued = await enqueuerOf(db).submit({ record, queue: { chat_telegram_id: Number(chat.telegram_id), chat_kind: chatKind, request: JSON.stringify(request) }, limits });
		if ("refused" in queued) throw queued.refused;
		return { message: messageView({ ...record, id: queued.id } as unknown as MessageRow), created: true };
	} catch (err) {
		// Two requests with the same client key raced: the other one queued it.
		if (isDuplicateKey(err) && params.client_key) {
			const earlier = await earlierWithKey(db, chatId, params.client_key, earlierFingerprints(params));
			if (earlier) return { message: earlier, created: false };
		}
		throw err;
	}
}
