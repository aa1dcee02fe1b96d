/**
 * Between proto/gateway.proto's messages and the actions REST uses. Each unary RPC is a route: the
 * action, how the request becomes its params (proto3 defaults, 0 and "", mean "not given"; the
 * `optional` seqs keep their presence), and how the action's result becomes the reply. Streams map
 * their request to a topic of the event-stream hub, and each event to a MessageEvent.
 */
import { fail, type FieldProblem } from "../../lib/errors";
import type { GatewayMeta } from "../../lib/meta";
import type { Topic } from "../../mixins/event-stream/subscription-hub";
import type { botView } from "../bots/registry";
import type { GatewayEvent } from "../broker/event-log";
import type { chatView, MessageView } from "../chats/views";

// --- proto messages (fields as @grpc/proto-loader gives them: keepCase, longs as numbers) ---

export interface SenderProto {
	telegram_id: number;
	username: string;
	first_name: string;
	last_name: string;
	is_bot: boolean;
}

export interface MessageProto {
	id: number;
	seq: number;
	chat_id: number;
	bot_id: number;
	telegram_message_id: number;
	direction: string;
	type: string;
	text: string;
	caption: string;
	entities_json: string;
	from: SenderProto | null;
	reply_to_message_id: number;
	thread_id: number;
	media_json: string;
	date: string;
	edit_date: string;
	status: string;
	error: string;
	error_details_json: string;
	media_group_id: string;
}

export interface MessageEventProto {
	type: string;
	seq: number;
	bot_id: number;
	chat_id: number;
	message: MessageProto | null;
	update_kind: string;
	update_json: string;
	created_at: string;
}

export interface ChatProto {
	id: number;
	bot_id: number;
	telegram_id: number;
	type: string;
	title: string;
	username: string;
	first_name: string;
	last_name: string;
	created_at: string;
	updated_at: string;
	business_connection_id: string;
	is_forum: boolean;
	migrated_to_chat_id: number;
}

export interface BotProto {
	id: number;
	username: string;
	telegram_id: number;
	display_name: string;
	description: string;
	mode: string;
	webhook_url: string;
	is_active: boolean;
	created_at: string;
	updated_at: string;
	last_error: string;
}

export interface StreamMessagesRequest {
	bot_id: number;
	since_seq?: number;
}

export interface StreamChatMessagesRequest {
	chat_id: number;
	since_seq?: number;
}

export interface SendMessageRequest {
	chat_id: number;
	text: string;
	parse_mode: string;
	reply_to_message_id: number;
	disable_notification: boolean;
	idempotency_key: string;
}

export interface GetMessagesRequest {
	chat_id: number;
	limit: number;
	before_seq?: number;
	after_seq?: number;
	cursor: string;
}

export interface ListChatsRequest {
	bot_id: number;
	limit: number;
	cursor: string;
}

export interface ListBotsRequest {
	limit: number;
	cursor: string;
}

export interface IdRequest {
	id: number;
}

export interface CreateBotRequest {
	token: string;
	display_name: string;
	description: string;
}

// --- action results -> proto ---

type ChatView = ReturnType<typeof chatView>;
type BotView = ReturnType<typeof botView>;
interface Page<T> {
	data: T[];
	next_cursor: string | null;
}

const json = (value: unknown): string => (value === null || value === undefined ? "" : JSON.stringify(value));

export function chatToProto(chat: ChatView): ChatProto {
	return {
		id: chat.id,
		bot_id: chat.bot_id,
		telegram_id: chat.telegram_id,
		type: chat.type,
		title: chat.title ?? "",
		username: chat.username ?? "",
		first_name: chat.first_name ?? "",
		last_name: chat.last_name ?? "",
		created_at: chat.created_at ?? "",
		updated_at: chat.updated_at ?? "",
		business_connection_id: chat.business_connection_id ?? "",
		is_forum: chat.is_forum,
		migrated_to_chat_id: chat.migrated_to_chat_id ?? 0,
	};
}

export function botToProto(bot: BotView): BotProto {
	return {
		id: bot.id,
		username: bot.username,
		telegram_id: bot.telegram_id,
		display_name: bot.display_name ?? "",
		description: bot.description ?? "",
		mode: bot.mode,
		webhook_url: bot.webhook_url ?? "",
		is_active: bot.is_active,
		created_at: bot.created_at ?? "",
		updated_at: bot.updated_at ?? "",
		last_error: bot.last_error ?? "",
	};
}

export function messageToProto(message: MessageView): MessageProto {
	const from = message.from;
	return {
		id: message.id,
		seq: message.seq ?? 0,
		chat_id: message.chat_id,
		bot_id: message.bot_id,
		telegram_message_id: message.telegram_message_id ?? 0,
		direction: message.direction,
		type: message.type,
		text: message.text ?? "",
		caption: message.caption ?? "",
		entities_json: json(message.entities),
		from: from
			? { telegram_id: from.telegram_id, username: from.username ?? "", first_name: from.first_name ?? "", last_name: from.last_name ?? "", is_bot: from.is_bot }
			: null,
		reply_to_message_id: message.reply_to_message_id ?? 0,
		thread_id: message.thread_id ?? 0,
		media_json: json(message.media),
		date: message.date ?? "",
		edit_date: message.edit_date ?? "",
		status: message.status ?? "",
		error: message.error ?? "",
		error_details_json: json(message.error_details),
		media_group_id: message.media_group_id ?? "",
	};
}

export function eventToProto(event: GatewayEvent): MessageEventProto {
	return {
		type: event.type,
		seq: event.seq,
		bot_id: event.bot_id,
		chat_id: event.chat_id ?? 0,
		message: event.message ? messageToProto(event.message as unknown as MessageView) : null,
		update_kind: event.update_kind ?? "",
		update_json: event.type === "update" ? json(event.update) : "",
		created_at: event.created_at,
	};
}

/** Roughly the bytes an event takes on the wire: its variable-length fields (in UTF-8) plus the fixed ones. */
export function approximateSize(event: MessageEventProto): number {
	const m = event.message;
	const texts = m ? [m.text, m.caption, m.entities_json, m.media_json, m.error, m.error_details_json, m.media_group_id, m.from?.username, m.from?.first_name, m.from?.last_name] : [];
	let size = 160 + Buffer.byteLength(event.update_json) + Buffer.byteLength(event.update_kind);
	for (const text of texts) size += text ? Buffer.byteLength(text) : 0;
	return size;
}

// --- requests -> action params ---

/** 0 means "not given" (the proto3 default). */
const given = (value: number): number | undefined => (value === 0 ? undefined : value);
/** "" means "not given". */
const givenText = (value: string): string | undefined => (value === "" ? undefined : value);

/** Drops the keys whose value is undefined, so `$$strict` actions see only what the client gave. */
function defined(params: Record<string, unknown>): Record<string, unknown> {
	return Object.fromEntries(Object.entries(params).filter(([, value]) => value !== undefined));
}

/** REST's rule for the Idempotency-Key header, for SendMessage's idempotency_key. */
const IDEMPOTENCY_KEY = /^[A-Za-z0-9._:-]{1,64}$/;

export interface UnaryRoute<Req, Res> {
	/** The action REST calls for the same request: same permission, ACL and validation. */
	action: string;
	params(request: Req): Record<string, unknown>;
	/** ctx.meta besides the principal (SendMessage's idempotency key). */
	meta?(request: Req): Partial<GatewayMeta>;
	/** Action param (or REST header) -> proto field, where they differ, for the fields named in error details. */
	fields?: Record<string, string>;
	/** The action's result (the REST body) as the reply. */
	reply(result: unknown): Res;
}

const page = <T, P>(result: unknown, map: (item: T) => P) => {
	const { data, next_cursor } = result as Page<T>;
	return { items: data.map(map), next_cursor: next_cursor ?? "" };
};

export const ROUTES = {
	SendMessage: {
		action: "chats.send",
		params: (r) =>
			defined({
				id: given(r.chat_id),
				text: givenText(r.text),
				parse_mode: givenText(r.parse_mode),
				reply_to_message_id: given(r.reply_to_message_id),
				disable_notification: r.disable_notification ? true : undefined,
			}),
		meta: (r) => {
			if (r.idempotency_key === "") return {};
			if (!IDEMPOTENCY_KEY.test(r.idempotency_key)) throw fail.badRequest("idempotency_key must be 1-64 letters, digits, '.', '_', ':' or '-'");
			return { idempotencyKey: r.idempotency_key };
		},
		fields: { id: "chat_id", "Idempotency-Key": "idempotency_key" },
		reply: (result) => {
			const message = result as MessageView;
			return { message: messageToProto(message), queued: message.status === "queued" };
		},
	} satisfies UnaryRoute<SendMessageRequest, { message: MessageProto; queued: boolean }>,

	GetMessages: {
		action: "chats.messages",
		params: (r) => defined({ id: given(r.chat_id), limit: given(r.limit), cursor: givenText(r.cursor), before_seq: r.before_seq, after_seq: r.after_seq }),
		fields: { id: "chat_id" },
		reply: (result) => {
			const { items, next_cursor } = page(result, messageToProto);
			return { messages: items, next_cursor };
		},
	} satisfies UnaryRoute<GetMessagesRequest, { messages: MessageProto[]; next_cursor: string }>,

	ListChats: {
		action: "chats.list",
		params: (r) => defined({ bot_id: given(r.bot_id), limit: given(r.limit), cursor: givenText(r.cursor) }),
		reply: (result) => {
			const { items, next_cursor } = page(result, chatToProto);
			return { chats: items, next_cursor };
		},
	} satisfies UnaryRoute<ListChatsRequest, { chats: ChatProto[]; next_cursor: string }>,

	GetChat: {
		action: "chats.get",
		params: (r) => defined({ id: given(r.id) }),
		reply: (result) => chatToProto(result as ChatView),
	} satisfies UnaryRoute<IdRequest, ChatProto>,

	ListBots: {
		action: "bots.list",
		params: (r) => defined({ limit: given(r.limit), cursor: givenText(r.cursor) }),
		reply: (result) => {
			const { items, next_cursor } = page(result, botToProto);
			return { bots: items, next_cursor };
		},
	} satisfies UnaryRoute<ListBotsRequest, { bots: BotProto[]; next_cursor: string }>,

	GetBot: {
		action: "bots.get",
		params: (r) => defined({ id: given(r.id) }),
		reply: (result) => botToProto(result as BotView),
	} satisfies UnaryRoute<IdRequest, BotProto>,

	CreateBot: {
		action: "bots.create",
		params: (r) => defined({ token: givenText(r.token), display_name: givenText(r.display_name), description: givenText(r.description) }),
		reply: (result) => botToProto(result as BotView),
	} satisfies UnaryRoute<CreateBotRequest, BotProto>,

	DeleteBot: {
		action: "bots.remove",
		params: (r) => defined({ id: given(r.id) }),
		reply: () => ({}),
	} satisfies UnaryRoute<IdRequest, Record<string, never>>,
};

// --- stream requests -> hub topics ---

export interface StreamOpening {
	topic: Topic;
	/** Absent: live events only; 0: the whole log first. */
	sinceSeq?: number;
}

function checkSeq(problems: FieldProblem[], sinceSeq: number | undefined): void {
	if (sinceSeq !== undefined && (!Number.isSafeInteger(sinceSeq) || sinceSeq < 0)) {
		problems.push({ field: "since_seq", message: "The 'since_seq' field must be greater than or equal to 0.", type: "numberMin" });
	}
}

export function streamMessagesOpening(request: StreamMessagesRequest): StreamOpening {
	const problems: FieldProblem[] = [];
	if (!Number.isSafeInteger(request.bot_id) || request.bot_id < 0) {
		problems.push({ field: "bot_id", message: "The 'bot_id' field must be a positive number (or 0 for every bot).", type: "numberPositive" });
	}
	checkSeq(problems, request.since_seq);
	if (problems.length > 0) throw fail.validation(problems);
	const botId = given(request.bot_id);
	return { topic: botId === undefined ? { kind: "all" } : { kind: "all", botId }, ...(request.since_seq !== undefined ? { sinceSeq: request.since_seq } : {}) };
}

export function streamChatOpening(request: StreamChatMessagesRequest): StreamOpening {
	const problems: FieldProblem[] = [];
	if (request.chat_id === 0) problems.push({ field: "chat_id", message: "The 'chat_id' field is required.", type: "required" });
	else if (!Number.isSafeInteger(request.chat_id) || request.chat_id < 0) {
		problems.push({ field: "chat_id", message: "The 'chat_id' field must be a positive number.", type: "numberPositive" });
	}
	checkSeq(problems, request.since_seq);
	if (problems.length > 0) throw fail.validation(problems);
	return { topic: { kind: "chat", id: request.chat_id }, ...(request.since_seq !== undefined ? { sinceSeq: request.since_seq } : {}) };
}
