/**
 * What normalising a Telegram update produces: the gateway's model of it, before storage.
 * services/ingest/normalize.ts turns a raw Update into a NormalizedUpdate; services/ingest/store.ts
 * writes it (chats upserted, messages stored or edited, one event per item) in one transaction.
 */
import type { ApiErrorBody } from "../../lib/errors";

/** A chat as Telegram describes it, reduced to the columns of `chats`. */
export interface ChatInfo {
	telegram_id: number;
	/**
	 * Set for a chat of a connected business account (business messages): Telegram says such a chat is
	 * independent of the bot's own chat that may share its id, so the two are different chats here.
	 */
	business_connection_id: string | null;
	/** private, group, supergroup, channel; "unknown" when Telegram's object has no type. */
	type: string;
	title: string | null;
	username: string | null;
	first_name: string | null;
	last_name: string | null;
	is_forum: boolean;
}

export interface SenderInfo {
	telegram_id: number;
	username: string | null;
	first_name: string | null;
	last_name: string | null;
	is_bot: boolean;
}

/** A message (or channel post, or business message) in the gateway's model. */
export interface MessageInfo {
	telegram_message_id: number;
	/**
	 * text, photo, document, sticker, voice, video, video_note, audio, animation, location, venue,
	 * contact, poll, dice, game, invoice, story, ... ; "service" for service messages (new members,
	 * pinned message, title change, forum topics, ...); "other" for content the gateway does not know.
	 */
	type: string;
	text: string | null;
	caption: string | null;
	/** Telegram's entities (or caption_entities), as sent; null when there are none. */
	entities: unknown[] | null;
	/**
	 * The message's content besides text: for media the file ids and descriptive fields (photo: the
	 * largest size plus all sizes; document/audio/...: the object), for location/contact/poll/... the
	 * object; for service messages `{ service: "<field name>", value: <the field's value> }`. Null for text.
	 */
	media: Record<string, unknown> | null;
	from: SenderInfo | null;
	/** Telegram's message_id of the message this one replies to. */
	reply_to_message_id: number | null;
	/** The forum topic (message_thread_id of a topic message); null outside topics and for reply threads. */
	thread_id: number | null;
	media_group_id: string | null;
	/** Unix seconds as Telegram sends them. */
	date: number | null;
	edit_date: number | null;
}

export type MessageKind = "message" | "edited_message" | "channel_post" | "edited_channel_post" | "business_message" | "edited_business_message";

/** One thing an update carries: a new message, an edit, or any other kind (stored raw). */
export type UpdateItem =
	| {
			kind: MessageKind;
			edit: boolean;
			chat: ChatInfo;
			message: MessageInfo;
			/** A group's service message: it became the supergroup with this Telegram id. */
			migrate_to_chat_id: number | null;
			/** A supergroup's service message: it was the group with this Telegram id. */
			migrate_from_chat_id: number | null;
	  }
	| {
			/** callback_query, chat_member, message_reaction, ..., or a kind the gateway does not know. */
			kind: string;
			edit?: undefined;
			/** The chat the update is about, when it names one. */
			chat: ChatInfo | null;
			message?: undefined;
			/** The update's payload for this kind, as Telegram sent it. */
			payload: unknown;
	  };

export interface NormalizedUpdate {
	update_id: number;
	/** The first kind present, for the telegram_updates row ("unknown" for an update with none). */
	primary_kind: string;
	/** Usually one; an update may carry several kinds (Telegram never does, some fixtures do). */
	items: UpdateItem[];
}

/** A bot's webhook path: 64 hex digits, random (services/bots). */
export const WEBHOOK_PATH = /^[0-9a-f]{64}$/;

/** A Telegram push as the api node took it: the webhook path, the secret header, the JSON body. */
export interface TelegramPush {
	path: string;
	secret?: string;
	body: Record<string, unknown>;
}

/** What a push is answered: Telegram's 2xx body, or the error (API.md's format) its request gets. */
export type PushOutcome = { ok: true; duplicate?: true } | { error: ApiErrorBody["error"] };
