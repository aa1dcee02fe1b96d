/**
 * The record of a send's outcome, in one transaction with the removal of its queue row: the message as
 * sent (from Telegram's answer) or as failed, either way with the next seq and an `outgoing_message`
 * event, so sockets, gRPC streams, webhooks, replays and the history all learn how it ended.
 */
import type { Transaction } from "sequelize";
import type { Database } from "../../lib/db/connection";
import type { Message, OutboundQueueItem } from "../../lib/db/models";
import type { TelegramMessage } from "../../lib/telegram/client";
import { allocateSeqs, insertEvents, type GatewayEvent } from "../broker/event-log";
import { messageView, type MessageRow } from "../chats/views";
import { isObject, own } from "../ingest/message-content";
import { placementIn } from "../ingest/normalize";
import { failureColumn, type SendFailure } from "./send-failure";

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

/** The message still queued, locked: on MySQL a plain read could see a snapshot older than a try that committed meanwhile. */
async function queuedMessage(db: Database, t: Transaction, messageId: number): Promise<Message | null> {
	const message = await db.models.Message.findByPk(messageId, { transaction: t, lock: t.LOCK.UPDATE });
	return message && message.status === "queued" ? message : null;
}

async function appendOutgoingEvent(db: Database, t: Transaction, seq: number, message: Message): Promise<GatewayEvent[]> {
	const view = messageView(message.get({ plain: true }) as MessageRow);
	const botId = Number(message.bot_id);
	const chatId = Number(message.chat_id);
	return insertEvents(db, t, seq, [
		{ type: "outgoing_message", bot_id: botId, chat_id: chatId, message_id: Number(message.id), payload: () => ({ type: "outgoing_message", bot_id: botId, chat_id: chatId, message: view }) },
	]);
}

/** The message as sent, its event, its queue row gone. Nothing but the row's removal when it is recorded already. */
export function writeSent(db: Database, row: OutboundQueueItem, sent: TelegramMessage): Promise<GatewayEvent[]> {
	return db.transaction(async (t) => {
		const message = await queuedMessage(db, t, Number(row.message_id));
		// Gone, or recorded already (by a try whose COMMIT landed although its answer was lost).
		if (!message) {
			await row.destroy({ transaction: t });
			return [];
		}
		const seq = await allocateSeqs(db, t, 1);
		// Telegram's answer is read, never trusted: what has the wrong shape is left out.
		const answer: Partial<TelegramMessage> = sent && typeof sent === "object" ? sent : {};
		const from = answer.from && typeof answer.from === "object" && isInt(answer.from.id) ? answer.from : null;
		message.set({
			seq,
			status: "sent",
			telegram_message_id: isInt(answer.message_id) ? answer.message_id : null,
			date: typeof answer.date === "number" && Number.isFinite(answer.date) && Math.abs(answer.date) < 1e11 ? new Date(answer.date * 1000) : new Date(),
			...(typeof answer.text === "string" ? { text: answer.text } : {}),
			...(Array.isArray(answer.entities) ? { entities: JSON.stringify(answer.entities) } : {}),
			...(from ? { from_telegram_id: from.id, from_username: typeof from.username === "string" ? from.username : null, from_first_name: typeof from.first_name === "string" ? from.first_name : null, from_is_bot: true } : {}),
			...(placementOf(answer) ?? {}),
			error: null,
		});
		await message.save({ transaction: t });
		const events = await appendOutgoingEvent(db, t, seq, message);
		await row.destroy({ transaction: t });
		return events;
	});
}

/** The message as failed, its event, its queue row gone; null (and only the row's removal) when it is not queued any more. */
export function writeFailed(db: Database, row: OutboundQueueItem, failure: SendFailure): Promise<GatewayEvent[] | null> {
	return db.transaction(async (t) => {
		// One recorded as sent (by a try whose answer was lost) stays sent.
		const message = await queuedMessage(db, t, Number(row.message_id));
		if (!message) {
			await row.destroy({ transaction: t });
			return null;
		}
		const seq = await allocateSeqs(db, t, 1);
		message.set({ seq, status: "failed", error: failureColumn(failure) });
		await message.save({ transaction: t });
		const events = await appendOutgoingEvent(db, t, seq, message);
		await row.destroy({ transaction: t });
		return events;
	});
}

/** A message Telegram took whose full record failed: sent, its queue row gone, no event. */
export async function writeSentBare(db: Database, row: OutboundQueueItem): Promise<void> {
	await db.transaction(async (t) => {
		await db.models.Message.update({ status: "sent", error: null }, { where: { id: Number(row.message_id), status: "queued" }, transaction: t });
		await row.destroy({ transaction: t });
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
