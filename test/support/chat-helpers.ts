/**
 * Helpers for the chat and send integration tests: chats made by the Telegram double playing a user,
 * waiting (bounded) for the gateway's events and for a message's status, and row counts to show that
 * a refused request changed nothing.
 */
import type { HttpResult } from "./harness";
import type { TelegramGateway } from "./telegram-gateway";
import type { Update, UserMessageSpec } from "./telegram-double";

export interface MessageBody {
	id: number;
	seq: number | null;
	chat_id: number;
	bot_id: number;
	telegram_message_id: number | null;
	direction: "incoming" | "outgoing";
	type: string;
	text: string | null;
	caption: string | null;
	entities: unknown;
	from: { telegram_id: number; username: string | null; first_name: string | null; last_name: string | null; is_bot: boolean } | null;
	reply_to_message_id: number | null;
	thread_id: number | null;
	media: Record<string, unknown> | null;
	/** Beyond API.md: the album id Telegram gives the photos and videos of one album. */
	media_group_id: string | null;
	date: string | null;
	edit_date: string | null;
	status: "queued" | "sent" | "failed" | null;
	/** Failed messages only. */
	error?: string | null;
	error_details?: Record<string, unknown>;
}

export interface ChatBody {
	id: number;
	bot_id: number;
	telegram_id: number;
	business_connection_id: string | null;
	type: string;
	title: string | null;
	username: string | null;
	first_name: string | null;
	last_name: string | null;
	/** Beyond API.md: a supergroup with topics; a group that became a supergroup (Telegram's id of it). */
	is_forum: boolean;
	migrated_to_chat_id: number | null;
	created_at: string;
	updated_at: string;
}

export interface Page<T> {
	data: T[];
	next_cursor: string | null;
}

export interface GatewayEventBody {
	type: string;
	seq: number;
	bot_id: number;
	chat_id: number | null;
	message?: MessageBody;
}

export const ISO = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{3})?Z$/;

/** The fields API.md's "Shapes" lists for a message. */
export const MESSAGE_FIELDS = [
	"id",
	"seq",
	"chat_id",
	"bot_id",
	"telegram_message_id",
	"direction",
	"type",
	"text",
	"caption",
	"entities",
	"from",
	"reply_to_message_id",
	"thread_id",
	"media",
	"date",
	"edit_date",
	"status",
];

export const CHAT_FIELDS = ["id", "bot_id", "telegram_id", "type", "title", "username", "first_name", "last_name", "created_at", "updated_at"];

/** The first event collected by t.events that satisfies `predicate`; throws after `timeoutMs`. */
export async function waitForEvent(t: TelegramGateway, predicate: (event: GatewayEventBody) => boolean, timeoutMs = 10_000): Promise<GatewayEventBody> {
	let found: GatewayEventBody | undefined;
	await t.telegram.waitFor(() => {
		found = (t.events as unknown as GatewayEventBody[]).find(predicate);
		return found !== undefined;
	}, timeoutMs);
	return found!;
}

/**
 * The double plays a user writing to the bot; resolves with the gateway's `new_message` event for it
 * (its chat_id is the gateway's chat id) and the Update Telegram sent.
 */
export async function userWrites(
	t: TelegramGateway,
	token: string,
	botId: number,
	spec: UserMessageSpec,
	timeoutMs = 10_000,
): Promise<{ chatId: number; message: MessageBody; event: GatewayEventBody; update: Update }> {
	const update = t.telegram.userSends(token, spec);
	const messageId = update.message!.message_id;
	const chatTelegramId = update.message!.chat.id;
	const candidate = (e: GatewayEventBody) =>
		e.type === "new_message" && e.bot_id === botId && e.message?.telegram_message_id === messageId && e.message.direction === "incoming" && e.chat_id !== null && e.message.from?.telegram_id === update.message!.from?.id;
	// Another chat of the same bot may use the same message id (the same group member writing the
	// first message of two groups): each candidate's chat is checked through the API.
	const chatMatches = new Map<number, boolean>();
	let event: GatewayEventBody | undefined;
	await t.telegram.waitFor(async () => {
		for (const e of (t.events as unknown as GatewayEventBody[]).filter(candidate)) {
			if (!chatMatches.has(e.chat_id!)) chatMatches.set(e.chat_id!, (await t.api<ChatBody>("GET", `/chats/${e.chat_id}`)).body.telegram_id === chatTelegramId);
			if (chatMatches.get(e.chat_id!)) {
				event = e;
				return true;
			}
		}
		return false;
	}, timeoutMs);
	return { chatId: event!.chat_id!, message: event!.message!, event: event!, update };
}

/** Polls GET /messages/:id until its status is `status`; throws with the last answer after `timeoutMs`. */
export async function waitForStatus(t: TelegramGateway, messageId: number, status: string, timeoutMs = 20_000): Promise<MessageBody> {
	let last: HttpResult<MessageBody> | undefined;
	try {
		await t.telegram.waitFor(async () => {
			last = await t.api<MessageBody>("GET", `/messages/${messageId}`);
			return last.status === 200 && last.body.status === status;
		}, timeoutMs, 100);
	} catch {
		throw new Error(`message ${messageId} is not ${status} after ${timeoutMs} ms: ${last?.status} ${last?.text}`);
	}
	return last!.body;
}

/** Row counts of the tables a refused request must not touch. */
export async function rowCounts(t: TelegramGateway): Promise<{ messages: number; queue: number; grants: number; events: number }> {
	const { models } = t.gw.runtime.db;
	return {
		messages: await models.Message.count(),
		queue: await models.OutboundQueueItem.count(),
		grants: await models.ChatPermission.count(),
		events: await models.EventRecord.count(),
	};
}

/** The double's accepted sends of one text. */
export function sentWithText(t: TelegramGateway, text: string) {
	return t.telegram.sent.filter((record) => record.method === "sendMessage" && record.params.text === text);
}
