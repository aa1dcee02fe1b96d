/**
 * The record of a send's outcome, in one transaction with the removal of its queue row: the message as
 * sent (from Telegram's answer) or as failed, either way with the next seq and an `outgoing_message`
 * event, so sockets, gRPC streams, webhooks, replays and the history all learn how it ended.
 */
import type { Database } from "../../lib/db/connection";
import type { OutboundQueueItem } from "../../lib/db/models";
import { all, inIds, run, type SqlValue } from "../../lib/db/raw";
import { groupCommitPer } from "../../lib/db/group-commit";
import type { TelegramMessage } from "../../lib/telegram/client";
import { allocateSeqs, insertEvents, type EventDraft, type GatewayEvent } from "../broker/event-log";
import { messageView, type MessageRow } from "../chats/views";
import { isObject, own } from "../ingest/message-content";
import { placementIn } from "../ingest/normalize";
import type { KnownOutcome } from "./known-outcomes";
import { failureColumn, failures, type SendFailure } from "./send-failure";

const isInt = (value: unknown): value is number => Number.isSafeInteger(value);

/**
 * Where Telegram says the sent message went, read as ingest reads a received one (placementIn):
 * null when Telegram sent it as no reply (allow_sending_without_reply, the target gone). `null`
 * when the answer does not look like a message: the request's values stand then.
 */
export function placementOf(answer: unknown): { reply_to_message_id: number | null; thread_id: number | null } | null {
	if (!isObject(answer) || !isInt(answer.message_id)) return null;
	const chat = own(answer, "chat");
	return placementIn(answer, isObject(chat) ? Number(own(chat, "id")) : Number.NaN);
}

interface OutcomeRecord {
	row: OutboundQueueItem;
	outcome: KnownOutcome;
}

/** The message's event, or null when it was not queued any more (only its queue row went). */
type Recorded = GatewayEvent[] | null;

/**
 * Outcomes are written as group commits (lib/db/group-commit.ts): the sends of every bot on this
 * node that end while a record is being written share the next transaction.
 */
const recorderOf = groupCommitPer(writeOutcomes);

/** The columns a send's outcome sets on its message. */
function outcomeColumns(outcome: KnownOutcome): Partial<Record<keyof MessageRow, SqlValue>> {
	if ("failed" in outcome) return { status: "failed", error: failureColumn(outcome.failed) };
	// Telegram's answer is read, never trusted: what has the wrong shape is left out.
	const answer: Partial<TelegramMessage> = outcome.sent && typeof outcome.sent === "object" ? outcome.sent : {};
	const from = answer.from && typeof answer.from === "object" && isInt(answer.from.id) ? answer.from : null;
	return {
		status: "sent",
		telegram_message_id: isInt(answer.message_id) ? answer.message_id : null,
		date: typeof answer.date === "number" && Number.isFinite(answer.date) && Math.abs(answer.date) < 1e11 ? new Date(answer.date * 1000) : new Date(),
		...(typeof answer.text === "string" ? { text: answer.text } : {}),
		...(Array.isArray(answer.entities) ? { entities: JSON.stringify(answer.entities) } : {}),
		...(from ? { from_telegram_id: from.id, from_username: typeof from.username === "string" ? from.username : null, from_first_name: typeof from.first_name === "string" ? from.first_name : null, from_is_bot: true } : {}),
		...(placementOf(answer) ?? {}),
		error: null,
	};
}

/**
 * One transaction for the outcomes: each message still queued gets its columns, the next seq and an
 * `outgoing_message` event; every queue row goes. A message recorded already (by a try whose COMMIT
 * landed although its answer was lost, or earlier in this batch) stays as it is. The messages are
 * read locked: on MySQL a plain read could see a snapshot older than a try that committed meanwhile.
 * Plain statements (lib/db/raw.ts), as ingest's.
 */
async function writeOutcomes(db: Database, items: OutcomeRecord[]): Promise<Recorded[]> {
	const ids = [...new Set(items.map((item) => Number(item.row.message_id)))];
	return db.rawTransaction(async (t) => {
		const inList = inIds(db, ids);
		const rows = await all<MessageRow>(db, t, `SELECT * FROM messages WHERE id ${inList.sql}${db.dialect === "mysql" ? " FOR UPDATE" : ""}`, inList.values);
		const queued = new Map(rows.filter((message) => message.status === "queued").map((message) => [Number(message.id), message]));
		const settling: Array<{ index: number; message: MessageRow; columns: Partial<Record<keyof MessageRow, SqlValue>> }> = [];
		items.forEach((item, index) => {
			const id = Number(item.row.message_id);
			const message = queued.get(id);
			if (!message) return;
			queued.delete(id);
			settling.push({ index, message, columns: outcomeColumns(item.outcome) });
		});
		const results: Recorded[] = items.map(() => null);
		if (settling.length > 0) {
			const first = await allocateSeqs(db, t, settling.length);
			const now = new Date();
			const drafts: EventDraft[] = [];
			for (const [k, { message, columns: changes }] of settling.entries()) {
				const columns = { seq: first + k, ...changes, updated_at: now };
				const names = Object.keys(columns);
				await run(db, t, `UPDATE messages SET ${names.map((name) => `${name} = ?`).join(", ")} WHERE id = ?`, [...(Object.values(columns) as SqlValue[]), Number(message.id)]);
				const view = messageView({ ...message, ...columns } as MessageRow);
				const botId = Number(message.bot_id);
				const chatId = Number(message.chat_id);
				drafts.push({ type: "outgoing_message", bot_id: botId, chat_id: chatId, message_id: Number(message.id), payload: () => ({ type: "outgoing_message", bot_id: botId, chat_id: chatId, message: view }) });
			}
			const events = await insertEvents(db, t, first, drafts, now);
			settling.forEach(({ index }, k) => (results[index] = [events[k]!]));
		}
		await run(db, t, `DELETE FROM outbound_queue WHERE message_id ${inList.sql}`, inList.values);
		return results;
	});
}

/** The message as sent, its event, its queue row gone. Nothing but the row's removal when it is recorded already. */
export async function writeSent(db: Database, row: OutboundQueueItem, sent: TelegramMessage): Promise<GatewayEvent[]> {
	return (await recorderOf(db).submit({ row, outcome: { sent } })) ?? [];
}

/** The message as failed, its event, its queue row gone; null (and only the row's removal) when it is not queued any more. */
export function writeFailed(db: Database, row: OutboundQueueItem, failure: SendFailure): Promise<GatewayEvent[] | null> {
	return recorderOf(db).submit({ row, outcome: { failed: failure } });
}

/** A message Telegram took whose full record failed: sent, its queue row gone, no event. */
export async function writeSentBare(db: Database, row: OutboundQueueItem): Promise<void> {
	await db.rawTransaction(async (t) => {
		await run(db, t, "UPDATE messages SET status = 'sent', error = NULL, updated_at = ? WHERE id = ? AND status = 'queued'", [new Date(), Number(row.message_id)]);
		await run(db, t, "DELETE FROM outbound_queue WHERE message_id = ?", [Number(row.message_id)]);
	});
}

/** The gateway's chat of a bot's chat with this Telegram id (a supergroup a group became), if the bot has seen it. */
export async function chatIdOf(db: Database, botId: number, telegramId: number): Promise<number | null> {
	const chat = await db.models.Chat.findOne({ where: { bot_id: botId, telegram_id: telegramId, business_connection_id: "" }, attributes: ["id"], raw: true });
	return chat ? Number(chat.id) : null;
}

/**
 * Telegram said the chat of this message became a supergroup: the chat records it, unless ingest did
 * already (the group's migrate_to_chat_id service message). Returns the gateway's chat of the supergroup, if any.
 */
export async function noteChatMigration(db: Database, messageId: number, migrateTo: number): Promise<number | null> {
	const message = await db.models.Message.findByPk(messageId, { attributes: ["bot_id", "chat_id"], raw: true });
	if (!message) return null;
	await db.transaction((transaction) =>
		db.models.Chat.update({ migrated_to_chat_id: migrateTo }, { where: { id: Number(message.chat_id), migrated_to_chat_id: null }, transaction }),
	);
	return chatIdOf(db, Number(message.bot_id), migrateTo);
}

/**
 * After a restore from a backup (`npm run migrate -- restored`): every message the backup held as
 * queued fails, may_have_been_delivered, instead of being sent (again, for those that went out
 * after the backup). Oldest first; each gets its failed record and outgoing_message event.
 */
export async function failQueuedAtBackup(db: Database): Promise<number> {
	const rows = await db.models.OutboundQueueItem.findAll({ order: [["message_id", "ASC"]] });
	for (const row of rows) await writeFailed(db, row, failures.queuedAtBackup());
	return rows.length;
}
