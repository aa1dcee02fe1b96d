/**
 * The people and chats around the bots: chat registry (with @usernames), per-chat message ids shared by what users and
 * the bot send, a bounded memory of messages (for replies and callback queries), and the Update factory for playing a user.
 */
import { createHash, randomInt } from "node:crypto";
import { badRequest, intParam, stringParam } from "./http";
import { detectEntities } from "./formatting";
import type { CallbackQuery, Chat, ChatMemberUpdated, Message, Params, Update, User, UserMessageSpec } from "./types";

/** The sender of group messages when a test names none. */
export const DEFAULT_GROUP_MEMBER_ID = 100_000_001;

export const unixNow = (): number => Math.floor(Date.now() / 1000);

/** Inserts into a Map used as a bounded LRU-by-insertion store. */
function boundedSet<K, V>(map: Map<K, V>, key: K, value: V, cap: number): void {
	map.delete(key);
	map.set(key, value);
	if (map.size > cap) map.delete(map.keys().next().value as K);
}

export function userFor(id: number, partial: Partial<User> = {}): User {
	return { id, is_bot: false, first_name: "Test", last_name: `User${Math.abs(id)}`, username: `user${Math.abs(id)}`, language_code: "en", ...partial };
}

/** The bot a token belongs to: chats and messages are the bot's, and outlive a token revoked at BotFather. */
const botOf = (token: string): string => token.slice(0, token.indexOf(":"));

export class World {
	private readonly chats = new Map<number, Chat>();
	private readonly usernames = new Map<string, number>();
	private readonly messages = new Map<string, Message>();
	private readonly counters = new Map<string, number>();
	readonly missingChats = new Set<number>();
	readonly blockedChats = new Set<number>();
	/** Groups upgraded to supergroups: old chat id -> the supergroup's. */
	readonly migratedChats = new Map<number, number>();

	constructor(private readonly cap: number) {}

	/** The chat with that id, created on first sight (positive: private, negative: supergroup), `partial` merged in. */
	chat(id: number, partial: Partial<Chat> = {}): Chat {
		const known = this.chats.get(id);
		const base: Chat = known ?? (id > 0 ? { id, type: "private", first_name: "Test", last_name: `User${id}`, username: `user${id}` } : { id, type: "supergroup", title: `Test group ${Math.abs(id)}` });
		const chat: Chat = { ...base, ...partial, id };
		boundedSet(this.chats, id, chat, this.cap);
		if (chat.username) boundedSet(this.usernames, chat.username.toLowerCase(), id, this.cap);
		return chat;
	}

	/** `chat_id` of a send: an integer, a decimal string, or "@username" of a chat the double knows. */
	resolveChatId(params: Params): number {
		const value = params.chat_id;
		if (value === undefined || value === null || value === "") throw badRequest("chat_id is empty");
		const id = intParam(params, "chat_id");
		if (id !== undefined && id !== 0) return id;
		const name = stringParam(params, "chat_id");
		const byName = name?.startsWith("@") ? this.usernames.get(name.slice(1).toLowerCase()) : undefined;
		if (byName === undefined) throw badRequest("chat not found");
		return byName;
	}

	/** The next message id in that chat (one counter per bot and chat), or `given`, which moves the counter past it. */
	messageId(token: string, chatId: number, given?: number): number {
		const key = `${botOf(token)}|${chatId}`;
		const last = this.counters.get(key) ?? 0;
		const id = given ?? last + 1;
		boundedSet(this.counters, key, Math.max(last, id), this.cap * 10);
		return id;
	}

	remember(token: string, message: Message): void {
		boundedSet(this.messages, `${botOf(token)}|${message.chat.id}|${message.message_id}`, message, this.cap);
	}

	recall(token: string, chatId: number, messageId: number): Message | undefined {
		return this.messages.get(`${botOf(token)}|${chatId}|${messageId}`);
	}

	/** A message a user writes to the bot (private chat) or in a group; remembered, not enqueued. */
	userMessage(token: string, spec: UserMessageSpec): Message {
		const { chat_id, text, from, chat: chatPartial, message_id, ...extra } = spec;
		const chat = this.chat(chat_id, chatPartial);
		const sender = chat.type === "private" ? userFor(chat.id, { first_name: chat.first_name ?? "Test", last_name: chat.last_name, username: chat.username, ...from }) : userFor(from?.id ?? DEFAULT_GROUP_MEMBER_ID, from);
		const entities = text !== undefined && extra.entities === undefined ? detectEntities(text) : [];
		const message: Message = {
			message_id: this.messageId(token, chat.id, message_id),
			from: sender,
			chat,
			date: unixNow(),
			...(text !== undefined ? { text } : {}),
			...(entities.length > 0 ? { entities } : {}),
			...extra,
		};
		this.remember(token, message);
		return message;
	}

	edited(token: string, spec: { chat_id: number; message_id: number; text: string }): Omit<Update, "update_id"> {
		const original = this.recall(token, spec.chat_id, spec.message_id) ?? { ...this.userMessage(token, { chat_id: spec.chat_id }), message_id: spec.message_id };
		const entities = detectEntities(spec.text);
		const { entities: _old, ...rest } = original;
		const message: Message = { ...rest, edit_date: Math.max(unixNow(), original.date), text: spec.text, ...(entities.length > 0 ? { entities } : {}) };
		this.remember(token, message);
		return { edited_message: message };
	}

	callbackQuery(token: string, spec: { chat_id: number; message_id: number; data: string; from?: Partial<User> }): Omit<Update, "update_id"> {
		const chat = this.chat(spec.chat_id);
		const message = this.recall(token, chat.id, spec.message_id) ?? { message_id: spec.message_id, chat, date: unixNow() };
		const from = userFor(spec.from?.id ?? (chat.type === "private" ? chat.id : DEFAULT_GROUP_MEMBER_ID), spec.from);
		const callback: CallbackQuery = {
			id: String(BigInt(randomInt(2 ** 47)) * 100_000n + BigInt(randomInt(100_000))),
			from,
			message,
			chat_instance: String(BigInt.asIntN(64, BigInt(`0x${createHash("sha256").update(`${botOf(token)}|${chat.id}`).digest("hex").slice(0, 16)}`))),
			data: spec.data,
		};
		return { callback_query: callback };
	}

	memberJoined(spec: { chat_id: number; user_id: number; from?: Partial<User> }): Omit<Update, "update_id"> {
		const chat = this.chat(spec.chat_id);
		const user = userFor(spec.user_id);
		const change: ChatMemberUpdated = {
			chat,
			from: spec.from ? userFor(spec.from.id ?? spec.user_id, spec.from) : user,
			date: unixNow(),
			old_chat_member: { status: "left", user },
			new_chat_member: { status: "member", user },
		};
		return { chat_member: change };
	}
}
