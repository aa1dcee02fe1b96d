/**
 * The messages of a batch of updates: new ones inserted once (by chat and Telegram message id),
 * edits applied when not older than what is stored and kept in the message's history, and the
 * event each update item becomes.
 */
import type { Transaction } from "sequelize";
import type { Database } from "../../lib/db/connection";
import { all, insertReturning, insertRows, placeholders, run, type SqlValue } from "../../lib/db/raw";
import type { EventDraft } from "../broker/event-log";
import { messageView, type MessageRow } from "../chats/views";
import type { MessageInfo, UpdateItem } from "./types";

export function toDate(unixSeconds: number | null): Date | null {
	return unixSeconds === null ? null : new Date(unixSeconds * 1000);
}

/** An update item with its place in the event log, about to be stored. */
export interface Planned {
	seq: number;
	botId: number;
	chatId: number | null;
	item: UpdateItem;
	updateRowId: number;
	/** The update as Telegram sent it (what `update` events carry). */
	raw: string;
}

function messageColumns(message: MessageInfo) {
	return {
		type: message.type,
		text: message.text,
		caption: message.caption,
		entities: message.entities ? JSON.stringify(message.entities) : null,
		media: message.media ? JSON.stringify(message.media) : null,
		edit_date: toDate(message.edit_date),
	};
}

const MESSAGE_COLUMNS = [
	"seq",
	"bot_id",
	"chat_id",
	"telegram_message_id",
	"direction",
	"type",
	"text",
	"caption",
	"entities",
	"media",
	"from_telegram_id",
	"from_username",
	"from_first_name",
	"from_last_name",
	"from_is_bot",
	"reply_to_message_id",
	"thread_id",
	"media_group_id",
	"date",
	"edit_date",
	"update_row_id",
	"created_at",
	"updated_at",
] as const;

type MessageRecord = Record<(typeof MESSAGE_COLUMNS)[number], SqlValue>;

function messageRecord(p: Planned & { chatId: number }, message: MessageInfo, now: Date): MessageRecord {
	const content = messageColumns(message);
	return {
		seq: p.seq,
		bot_id: p.botId,
		chat_id: p.chatId,
		telegram_message_id: message.telegram_message_id,
		direction: "incoming",
		type: content.type,
		text: content.text,
		caption: content.caption,
		entities: content.entities,
		media: content.media,
		from_telegram_id: message.from?.telegram_id ?? null,
		from_username: message.from?.username ?? null,
		from_first_name: message.from?.first_name ?? null,
		from_last_name: message.from?.last_name ?? null,
		from_is_bot: message.from ? message.from.is_bot : null,
		reply_to_message_id: message.reply_to_message_id,
		thread_id: message.thread_id,
		media_group_id: message.media_group_id,
		date: toDate(message.date),
		edit_date: content.edit_date,
		update_row_id: p.updateRowId,
		created_at: now,
		updated_at: now,
	};
}

/**
 * Inserts message rows (duplicates of chat + message id skipped) and records, by seq, the rows that
 * went in: what was inserted plus the id SQL assigned.
 */
async function insertMessages(db: Database, t: Transaction, plans: MessagePlan[], records: MessageRecord[], into: Map<number, MessageRow>): Promise<void> {
	if (plans.length === 0) return;
	const rows = records.map((record) => MESSAGE_COLUMNS.map((column) => record[column]));
	let ids: Array<{ id: number; seq: number }>;
	// On MariaDB the duplicates come back too, with their old seq: only this batch's seqs are looked up below.
	if (db.returning) {
		ids = await insertReturning(db, t, "messages", MESSAGE_COLUMNS, rows, "id, seq", { ignoreDuplicates: true });
	} else {
		await insertRows(db, t, "messages", MESSAGE_COLUMNS, rows, { ignoreDuplicates: true });
		ids = await all(db, t, `SELECT id, seq FROM messages WHERE seq IN (${placeholders(plans.length)})`, plans.map((p) => p.seq));
	}
	const idBySeq = new Map(ids.map((r) => [Number(r.seq), Number(r.id)]));
	plans.forEach((plan, i) => {
		const id = idBySeq.get(plan.seq);
		if (id === undefined) return; // not inserted: the same chat and message id was stored before
		into.set(plan.seq, { ...records[i]!, id, status: null, error: null } as unknown as MessageRow);
	});
}

type MessagePlan = Planned & { item: Extract<UpdateItem, { message: MessageInfo }>; chatId: number };

/** Inserts new messages and applies edits; returns the stored row of every message item by its seq. */
export async function storeMessages(db: Database, t: Transaction, planned: Planned[], now: Date): Promise<Map<number, MessageRow>> {
	const result = new Map<number, MessageRow>();
	const withMessage = planned.filter((p): p is MessagePlan => Boolean(p.item.message) && p.chatId !== null);
	const fresh = withMessage.filter((p) => !p.item.edit);
	// A message Telegram delivers again under another update_id is kept once (unique chat + message id).
	await insertMessages(db, t, fresh, fresh.map((p) => messageRecord(p, p.item.message, now)), result);

	// Edits, and new messages that were already stored (same chat and message id): look them up.
	for (const p of withMessage.filter((m) => !result.has(m.seq))) {
		const { message } = p.item;
		const [existing] = await all<MessageRow>(db, t, "SELECT * FROM messages WHERE chat_id = ? AND telegram_message_id = ?", [p.chatId, message.telegram_message_id]);
		if (existing && p.item.edit) {
			const content = messageColumns(message);
			// Only an edit at least as new as the stored one changes the message: Telegram redelivers a
			// push that failed after later ones went through, and the older text must not come back.
			// Either way the edit joins the message's history, and its event carries the message as
			// stored, so a client that applies events in order never rolls back either.
			const applied = await run(
				db,
				t,
				"UPDATE messages SET type = ?, text = ?, caption = ?, entities = ?, media = ?, edit_date = ?, updated_at = ? WHERE id = ? AND (edit_date IS NULL OR edit_date <= ?)",
				[content.type, content.text, content.caption, content.entities, content.media, content.edit_date, now, existing.id, content.edit_date],
			);
			await insertRows(db, t, "message_edits", ["message_id", "seq", "text", "caption", "entities", "media", "edit_date", "created_at"], [
				[existing.id, p.seq, content.text, content.caption, content.entities, content.media, content.edit_date, now],
			]);
			result.set(p.seq, applied.changes > 0 ? ({ ...existing, ...content } as MessageRow) : existing);
		} else if (!existing) {
			// An edit of a message the gateway never saw: store it as it is now.
			await insertMessages(db, t, [p], [messageRecord(p, message, now)], result);
		}
		// Else a new update naming a message already stored (Telegram redelivering it under another
		// update_id, or a made-up one): the stored message stays, no second new_message repeats the
		// first one's content, and the update reaches consumers as an `update` event, raw.
	}
	return result;
}

export function draftFor(p: Planned, row: MessageRow | undefined): EventDraft {
	const { item, botId, chatId } = p;
	if (item.message && row) {
		const type = item.edit ? "edited_message" : "new_message";
		return {
			type,
			bot_id: botId,
			chat_id: chatId,
			message_id: Number(row.id),
			payload: () => ({ type, bot_id: botId, chat_id: chatId, message: messageView(row) }),
		};
	}
	// API.md: `update` is the raw update (update_id and its kind, as Telegram sent it).
	return {
		type: "update",
		bot_id: botId,
		chat_id: chatId,
		message_id: null,
		payload: () => ({ type: "update", bot_id: botId, chat_id: chatId, update_kind: item.kind, update: JSON.parse(p.raw) as unknown }),
	};
}
