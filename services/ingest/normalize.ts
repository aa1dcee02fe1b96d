/**
 * normalizeUpdate: a raw Telegram Update (parsed JSON) -> the gateway's NormalizedUpdate (./types.ts).
 *
 * Pure, no I/O. The only input it rejects is one that is not an Update at all: not a JSON object, or
 * without a safe-integer `update_id` >= 0 (NormalizeError names the field, the caller answers 400).
 * Anything else is accepted, however odd: every top-level key but `update_id` with a non-null value
 * becomes one item, in the update's key order, so an unknown or future kind is kept raw, and a message
 * kind Telegram sent in a shape we cannot use (no numeric chat.id or message_id) is kept raw as well.
 */
import { intOrNull, isInt, isObject, messageContent, own, stringOrNull, truncate, unixTimeOrNull, type JsonObject } from "./message-content";
import type { ChatInfo, MessageInfo, MessageKind, NormalizedUpdate, SenderInfo, UpdateItem } from "./types";

/** The input is not an Update; `field` names what is wrong ("update" for the whole body). */
export class NormalizeError extends Error {
	readonly field: string;

	constructor(message: string, field: string) {
		super(message);
		this.name = "NormalizeError";
		this.field = field;
	}
}

/** Column sizes of `chats` / `messages` (migrations/0001-initial-schema.ts). */
const MAX = { kind: 64, type: 32, title: 255, username: 64, name: 255, media_group_id: 64, business_connection_id: 128 } as const;

/** The update kinds that carry a Message, and whether they are an edit of one. */
const MESSAGE_KINDS: ReadonlyMap<string, boolean> = new Map<MessageKind, boolean>([
	["message", false],
	["edited_message", true],
	["channel_post", false],
	["edited_channel_post", true],
	["business_message", false],
	["edited_business_message", true],
]);

/**
 * Where the other kinds name the chat they are about (a path of keys to a Chat object). Kinds without a
 * chat: inline_query, chosen_inline_result, shipping_query, pre_checkout_query, purchased_paid_media,
 * poll, poll_answer (its voter_chat is the voter, not where the poll is), business_connection (only a
 * user_chat_id, no Chat), subscription, managed_bot; and every kind this table does not know.
 */
const CHAT_PATHS: ReadonlyMap<string, readonly string[]> = new Map([
	["callback_query", ["message", "chat"]],
	["my_chat_member", ["chat"]],
	["chat_member", ["chat"]],
	["chat_join_request", ["chat"]],
	["message_reaction", ["chat"]],
	["message_reaction_count", ["chat"]],
	["chat_boost", ["chat"]],
	["removed_chat_boost", ["chat"]],
	["deleted_business_messages", ["chat"]],
	// A message-shaped update (nutgram's guest_message); stored raw, but its chat is known.
	["guest_message", ["chat"]],
]);

/** A lone surrogate as JSON.stringify writes one (`\ud83d`), or an escaped backslash, taken whole so "\\ud83d" is not one. */
const LONE_SURROGATE_OR_BACKSLASH = /\\\\|\\ud[89a-f][0-9a-f]{2}/g;

/**
 * An update as received, normalised, and as it is stored: JSON.stringify writes a lone surrogate
 * (half of an emoji: no character) as an escape, while the database stores the text columns as
 * UTF-8, with U+FFFD in its place. History then said U+FFFD and the events (and webhooks) the half
 * surrogate: such an update is read with U+FFFD everywhere.
 */
export function readUpdate(body: unknown): { update: NormalizedUpdate; raw: string } {
	let raw = JSON.stringify(body);
	if (/\\ud[89a-f]/.test(raw)) {
		const wellFormed = raw.replace(LONE_SURROGATE_OR_BACKSLASH, (match) => (match.length === 2 ? match : "\\ufffd"));
		if (wellFormed !== raw) {
			raw = wellFormed;
			body = JSON.parse(raw) as unknown;
		}
	}
	return { update: normalizeUpdate(body), raw };
}

export function normalizeUpdate(raw: unknown): NormalizedUpdate {
	if (!isObject(raw)) throw new NormalizeError("An update must be a JSON object", "update");
	const updateId = own(raw, "update_id");
	if (updateId === undefined || updateId === null) throw new NormalizeError("update_id is required", "update_id");
	if (!isInt(updateId) || updateId < 0) throw new NormalizeError("update_id must be a non-negative integer", "update_id");

	const items: UpdateItem[] = [];
	for (const key of Object.keys(raw)) {
		if (key === "update_id") continue;
		const value = raw[key];
		if (value === null || value === undefined) continue;
		items.push(normalizeItem(key, value));
	}
	return { update_id: updateId, primary_kind: items.length > 0 ? items[0].kind : "unknown", items };
}

function normalizeItem(key: string, value: unknown): UpdateItem {
	const edit = MESSAGE_KINDS.get(key);
	if (edit !== undefined) return messageItem(key as MessageKind, edit, value);
	const path = CHAT_PATHS.get(key);
	// The business connection, when there is one, sits beside the chat (the message, or
	// deleted_business_messages itself).
	const chat = path ? chatInfo(follow(value, path), follow(value, path.slice(0, -1))) : null;
	return { kind: truncate(key, MAX.kind), chat, payload: value };
}

function messageItem(kind: MessageKind, edit: boolean, value: unknown): UpdateItem {
	const chat = isObject(value) ? chatInfo(own(value, "chat"), value) : null;
	const messageId = isObject(value) ? own(value, "message_id") : undefined;
	if (!isObject(value) || !chat || !isInt(messageId)) return { kind, chat: null, payload: value };
	return {
		kind,
		edit,
		chat,
		message: messageInfo(value, messageId, chat.telegram_id),
		migrate_to_chat_id: intOrNull(own(value, "migrate_to_chat_id")),
		migrate_from_chat_id: intOrNull(own(value, "migrate_from_chat_id")),
	};
}

/** value[path[0]][path[1]]..., or undefined as soon as a step is not an object. */
function follow(value: unknown, path: readonly string[]): unknown {
	let current = value;
	for (const key of path) {
		if (!isObject(current)) return undefined;
		current = own(current, key);
	}
	return current;
}

/**
 * A Chat object with a numeric id, reduced to the `chats` columns; null for anything else. `holder`
 * is the object the chat came in: its business_connection_id makes the chat one of a connected
 * business account, which Telegram says is independent of the bot's own chat with the same id.
 */
function chatInfo(value: unknown, holder: unknown): ChatInfo | null {
	if (!isObject(value)) return null;
	const id = own(value, "id");
	if (!isInt(id)) return null;
	return {
		telegram_id: id,
		business_connection_id: isObject(holder) ? stringOrNull(own(holder, "business_connection_id"), MAX.business_connection_id) || null : null,
		type: stringOrNull(own(value, "type"), MAX.type) || "unknown",
		title: stringOrNull(own(value, "title"), MAX.title),
		username: stringOrNull(own(value, "username"), MAX.username),
		first_name: stringOrNull(own(value, "first_name"), MAX.name),
		last_name: stringOrNull(own(value, "last_name"), MAX.name),
		is_forum: own(value, "is_forum") === true,
	};
}

/**
 * Who sent it: the `sender_chat` when the message was sent on behalf of a chat (channel posts, an
 * anonymous group admin, a linked channel's automatic forward), its title as the first name, since
 * `from` is then a placeholder user (GroupAnonymousBot, "Telegram", Channel_Bot); else `from`; null
 * when neither has a numeric id.
 */
function senderInfo(message: JsonObject): SenderInfo | null {
	const senderChat = own(message, "sender_chat");
	const senderChatId = isObject(senderChat) ? own(senderChat, "id") : undefined;
	if (isObject(senderChat) && isInt(senderChatId)) {
		return {
			telegram_id: senderChatId,
			username: stringOrNull(own(senderChat, "username"), MAX.username),
			first_name: stringOrNull(own(senderChat, "title"), MAX.name),
			last_name: null,
			is_bot: false,
		};
	}
	const from = own(message, "from");
	const fromId = isObject(from) ? own(from, "id") : undefined;
	if (isObject(from) && isInt(fromId)) {
		return {
			telegram_id: fromId,
			username: stringOrNull(own(from, "username"), MAX.username),
			first_name: stringOrNull(own(from, "first_name"), MAX.name),
			last_name: stringOrNull(own(from, "last_name"), MAX.name),
			is_bot: own(from, "is_bot") === true,
		};
	}
	return null;
}

/** The forum topic a message is in: message_thread_id names a topic only with is_topic_message (else a reply thread). */
function topicOf(message: JsonObject): number | null {
	return own(message, "is_topic_message") === true ? intOrNull(own(message, "message_thread_id")) : null;
}

/**
 * The message this one replies to in the same chat. Telegram sets reply_to_message on every message
 * of a forum topic to the topic's creation message, which is no reply; a reply to a message of
 * another topic comes as external_reply naming this chat.
 */
function replyTarget(message: JsonObject, chatId: number, topic: number | null): number | null {
	const replyTo = own(message, "reply_to_message");
	if (isObject(replyTo)) {
		const id = intOrNull(own(replyTo, "message_id"));
		const topicOpening = topic !== null && id === topic && own(replyTo, "forum_topic_created") !== undefined;
		return topicOpening ? null : id;
	}
	const external = own(message, "external_reply");
	const externalChat = isObject(external) ? own(external, "chat") : undefined;
	if (isObject(external) && isObject(externalChat) && own(externalChat, "id") === chatId) return intOrNull(own(external, "message_id"));
	return null;
}

/** Where a message sits in its chat: its forum topic and the message it replies to (a received message, or Telegram's answer to a send). */
export function placementIn(message: JsonObject, chatId: number): { reply_to_message_id: number | null; thread_id: number | null } {
	const topic = topicOf(message);
	return { reply_to_message_id: replyTarget(message, chatId, topic), thread_id: topic };
}

function messageInfo(message: JsonObject, messageId: number, chatId: number): MessageInfo {
	const { type, media } = messageContent(message);
	const entities = own(message, "entities");
	const captionEntities = own(message, "caption_entities");
	return {
		telegram_message_id: messageId,
		type,
		text: stringOrNull(own(message, "text")),
		caption: stringOrNull(own(message, "caption")),
		entities: Array.isArray(entities) ? entities : Array.isArray(captionEntities) ? captionEntities : null,
		media,
		from: senderInfo(message),
		...placementIn(message, chatId),
		media_group_id: stringOrNull(own(message, "media_group_id"), MAX.media_group_id),
		// Out of a Date's (and a DATETIME column's) range, a time would fail the insert: unknown instead.
		date: unixTimeOrNull(own(message, "date")),
		edit_date: unixTimeOrNull(own(message, "edit_date")),
	};
}
