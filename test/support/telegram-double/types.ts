/** The Bot API objects the double speaks (a subset of https://core.telegram.org/bots/api#available-types) and its own records. */

export type Params = Record<string, unknown>;

export interface User {
	id: number;
	is_bot: boolean;
	first_name: string;
	last_name?: string;
	username?: string;
	language_code?: string;
}

/** What getMe answers. */
export interface BotUser extends User {
	is_bot: true;
	username: string;
	can_join_groups: boolean;
	can_read_all_group_messages: boolean;
	supports_inline_queries: boolean;
	can_connect_to_business: boolean;
	has_main_web_app: boolean;
}

export interface Chat {
	id: number;
	type: "private" | "group" | "supergroup" | "channel";
	title?: string;
	username?: string;
	first_name?: string;
	last_name?: string;
	is_forum?: boolean;
}

export interface MessageEntity {
	type: string;
	offset: number;
	length: number;
	url?: string;
	language?: string;
}

export interface PhotoSize {
	file_id: string;
	file_unique_id: string;
	width: number;
	height: number;
	file_size: number;
}

export interface Document {
	file_id: string;
	file_unique_id: string;
	file_name: string;
	mime_type: string;
	file_size: number;
}

export interface Message {
	message_id: number;
	from?: User;
	chat: Chat;
	date: number;
	message_thread_id?: number;
	reply_to_message?: Message;
	edit_date?: number;
	text?: string;
	entities?: MessageEntity[];
	caption?: string;
	caption_entities?: MessageEntity[];
	photo?: PhotoSize[];
	document?: Document;
	reply_markup?: unknown;
	[field: string]: unknown;
}

export interface CallbackQuery {
	id: string;
	from: User;
	message?: Message;
	chat_instance: string;
	data?: string;
}

export interface ChatMemberUpdated {
	chat: Chat;
	from: User;
	date: number;
	old_chat_member: { status: string; user: User };
	new_chat_member: { status: string; user: User };
}

/** One Update: `update_id` plus (normally) exactly one kind. Unknown kinds are carried as they are. */
export interface Update {
	update_id: number;
	message?: Message;
	edited_message?: Message;
	callback_query?: CallbackQuery;
	chat_member?: ChatMemberUpdated;
	[kind: string]: unknown;
}

/** An injected fault for the next call(s) of a method. */
export type Fault =
	| { status: 429; retry_after: number }
	/** 500: the Bot API's JSON error; 502, 503, 504: its nginx's HTML page (the request did not reach the Bot API, or 504: it did, and was slow). */
	| { status: 500 | 502 | 503 | 504 }
	/** Answered late (the method runs after the delay). */
	| { delayMs: number }
	/** Never answered, and the method never runs. */
	| { hang: true }
	/** The method runs (a message is delivered and recorded in `sent`), then its answer comes this much later. */
	| { acceptThenDelayMs: number }
	/** The method runs (a message is delivered), then no answer ever comes: the connection is held until the client goes away. */
	| { acceptThenHang: true }
	/** HTTP 200 with this JSON as the whole body, the method not run: answers of a shape Telegram should not send. */
	| { answer: unknown };

export interface WebhookConfig {
	url: string;
	secret_token?: string;
	max_connections: number;
	/** Changes with every setWebhook: pushes started for an older one do not count as its errors. */
	generation: number;
}

export interface SentRecord {
	token: string;
	method: string;
	chat_id: number;
	/** The message text, or the caption of a photo / document. */
	text?: string;
	/** Date.now() when it was accepted. */
	at: number;
	message_id: number;
	params: Params;
	message: Message;
}

export interface PushAttempt {
	update_id: number;
	url: string;
	status?: number;
	error?: string;
	at: number;
}

export interface FloodRefusal {
	token: string;
	method: string;
	chat_id: number;
	scope: "bot" | "private" | "group";
	retry_after: number;
	at: number;
}

export interface GetUpdatesCall {
	token: string;
	offset?: number;
	limit: number;
	timeout: number;
	allowed_updates?: string[];
	at: number;
}

export interface TelegramDoubleOptions {
	/** Accept any token that looks like one (/^\d+:[\w-]{30,}$/) and create its bot on first use. */
	autoCreateBots?: boolean;
	/** Telegram's flood limits: 30 sends/s per bot, 1/s per private chat, 20/min per group. */
	floodLimits?: boolean;
	/** First webhook redelivery delay; doubles on each failure of the same update, up to maxRedeliveryDelayMs. */
	redeliveryDelayMs?: number;
	maxRedeliveryDelayMs?: number;
	/** A webhook push that has not answered by then counts as a network error. */
	pushTimeoutMs?: number;
	/** Pending updates kept per bot; beyond it the oldest is dropped (and counted). */
	maxPendingUpdates?: number;
	/** Cap of every record list (sent, pushLog, floodRefusals, getUpdatesCalls, remembered messages). */
	maxRecords?: number;
	maxBodyBytes?: number;
}

export interface AddBotSpec {
	token?: string;
	id?: number;
	username?: string;
	first_name?: string;
}

/** userSends' input: the chat, the text, the sender; any other Message field (entities, photo, message_thread_id, ...) is copied in. */
export interface UserMessageSpec {
	chat_id: number;
	text?: string;
	from?: Partial<User>;
	chat?: Partial<Chat>;
	/** Kept when given (the chat's counter moves past it); the next id in the chat otherwise. */
	message_id?: number;
	[field: string]: unknown;
}
