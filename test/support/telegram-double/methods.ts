/** The Bot API methods the double answers: getMe, the webhook trio, getUpdates, sendMessage, sendPhoto, sendDocument. */
import { createHash, randomBytes } from "node:crypto";
import { pushBounded, type BotState } from "./bot";
import type { FloodLimiter } from "./flood";
import { formatText } from "./formatting";
import { ApiError, badRequest, boolParam, conflict, intParam, stringListParam, stringParam, tooManyRequests, upgradedToSupergroup } from "./http";
import type { BotUser, FloodRefusal, GetUpdatesCall, Message, Params, SentRecord, Update, User } from "./types";
import { unixNow, type World } from "./world";

/** What the methods share with the double. */
export interface Core {
	world: World;
	flood: FloodLimiter | null;
	maxRecords: number;
	sent: SentRecord[];
	floodRefusals: FloodRefusal[];
	getUpdatesCalls: GetUpdatesCall[];
	/** The webhook was set, changed or deleted: reset and restart pushing. */
	webhookChanged(bot: BotState): void;
	nextWebhookGeneration(): number;
}

export interface CallContext {
	bot: BotState;
	params: Params;
	/** Aborted when the client goes away or the double stops. */
	signal: AbortSignal;
}

/** A result with Telegram's optional `description` next to it (setWebhook: "Webhook was set"). */
export class Described {
	constructor(
		readonly result: unknown,
		readonly description: string,
	) {}
}

type Method = (core: Core, call: CallContext) => unknown;

const WEBHOOK_CONFLICT = "can't use getUpdates method while webhook is active; use deleteWebhook to delete the webhook first";
const POLL_CONFLICT = "terminated by other getUpdates request; make sure that only one bot instance is running";

/** The bot as the `from` of its own messages: getMe's User without the capability flags. */
const botSender = (user: BotUser): User => ({ id: user.id, is_bot: true, first_name: user.first_name, username: user.username });

function deleteWebhook(core: Core, { bot, params }: CallContext): Described {
	const had = bot.webhook !== null;
	bot.webhook = null;
	if (boolParam(params, "drop_pending_updates")) bot.pending.length = 0;
	core.webhookChanged(bot);
	return new Described(true, had ? "Webhook was deleted" : "Webhook is already deleted");
}

function setWebhook(core: Core, call: CallContext): Described {
	const { bot, params } = call;
	const url = stringParam(params, "url") ?? "";
	if (url === "") return deleteWebhook(core, call);
	let parsed: URL;
	try {
		parsed = new URL(url);
	} catch {
		throw badRequest("bad webhook: invalid webhook URL specified");
	}
	// Telegram wants HTTPS on ports 443, 80, 88 or 8443; the double takes plain HTTP on any port, for loopback tests.
	if (parsed.protocol !== "https:" && parsed.protocol !== "http:") throw badRequest("bad webhook: An HTTPS URL must be provided for webhook");
	const secret = stringParam(params, "secret_token") || undefined;
	if (secret !== undefined && !/^[A-Za-z0-9_-]{1,256}$/.test(secret)) throw badRequest("secret token contains unallowed characters");
	const maxConnections = Math.min(100, Math.max(1, intParam(params, "max_connections") ?? 40));
	const allowed = stringListParam(params, "allowed_updates");
	const before = bot.webhook;
	const unchanged = before?.url === url && before.secret_token === secret && before.max_connections === maxConnections;
	if (allowed !== undefined) bot.allowedUpdates = allowed;
	if (boolParam(params, "drop_pending_updates")) bot.pending.length = 0;
	if (before?.url !== url) bot.lastError = undefined;
	bot.webhook = { url, secret_token: secret, max_connections: maxConnections, generation: core.nextWebhookGeneration() };
	bot.poller?.cancel(conflict("terminated by setWebhook request"));
	core.webhookChanged(bot);
	return new Described(true, unchanged ? "Webhook is already set" : "Webhook was set");
}

function getWebhookInfo(_core: Core, { bot }: CallContext): unknown {
	const webhook = bot.webhook;
	return {
		url: webhook?.url ?? "",
		has_custom_certificate: false,
		pending_update_count: bot.pending.length,
		...(bot.lastError ? { last_error_date: bot.lastError.date, last_error_message: bot.lastError.message } : {}),
		...(webhook ? { max_connections: webhook.max_connections } : {}),
		// Like Telegram, allowed_updates is listed only when it differs from the default.
		...(webhook && bot.allowedUpdates?.length ? { allowed_updates: bot.allowedUpdates } : {}),
	};
}

function getUpdates(core: Core, { bot, params, signal }: CallContext): Update[] | Promise<Update[]> {
	if (bot.webhook) throw conflict(WEBHOOK_CONFLICT);
	// As Telegram does: the newer request wins, the one waiting is ended with 409.
	bot.poller?.cancel(conflict(POLL_CONFLICT));
	const offset = intParam(params, "offset");
	const limit = Math.min(100, Math.max(1, intParam(params, "limit") ?? 100));
	const timeout = Math.min(3600, Math.max(0, intParam(params, "timeout") ?? 0)); // capped so the timer cannot overflow
	const allowed = stringListParam(params, "allowed_updates");
	if (allowed !== undefined) bot.allowedUpdates = allowed;
	pushBounded(core.getUpdatesCalls, { token: bot.token, offset, limit, timeout, allowed_updates: allowed, at: Date.now() }, core.maxRecords);
	if (offset !== undefined) bot.confirm(offset);
	const minId = offset !== undefined && offset > 0 ? offset : -Infinity;
	const ready = bot.poll(limit, minId);
	if (ready.length > 0 || timeout === 0 || signal.aborted) return ready;
	return new Promise<Update[]>((resolve, reject) => {
		const finish = (outcome: Update[] | ApiError) => {
			clearTimeout(timer);
			signal.removeEventListener("abort", onAbort);
			bot.poller = null;
			if (outcome instanceof ApiError) reject(outcome);
			else resolve(outcome);
		};
		const onAbort = () => finish([]);
		const timer = setTimeout(() => finish([]), timeout * 1000);
		signal.addEventListener("abort", onAbort);
		bot.poller = {
			wake: () => {
				const updates = bot.poll(limit, minId);
				if (updates.length > 0) finish(updates);
			},
			cancel: (error) => finish(error),
		};
	});
}

/** The message a send replies to (reply_to_message_id or reply_parameters), as Telegram checks it. */
function replyTarget(world: World, bot: BotState, chatId: number, params: Params): Message | undefined {
	const parameters = typeof params.reply_parameters === "object" && params.reply_parameters !== null ? (params.reply_parameters as Params) : undefined;
	const messageId = intParam(params, "reply_to_message_id") ?? (parameters && intParam(parameters, "message_id"));
	if (messageId === undefined || messageId === 0) return undefined;
	const found = world.recall(bot.token, chatId, messageId);
	if (!found && !boolParam(params, "allow_sending_without_reply") && !(parameters && boolParam(parameters, "allow_sending_without_reply"))) {
		throw badRequest("message to be replied not found");
	}
	if (!found) return undefined;
	const { reply_to_message: _nested, ...target } = found;
	return target;
}

/** The checks and bookkeeping every send shares: missing/blocked chats, replies, flood limits, the `sent` record. */
function deliver(core: Core, { bot, params }: CallContext, method: string, chatId: number, content: Partial<Message>): Message {
	const { world, flood } = core;
	if (world.missingChats.has(chatId)) throw badRequest("chat not found");
	if (world.blockedChats.has(chatId)) throw new ApiError(403, "Forbidden: bot was blocked by the user");
	const migratedTo = world.migratedChats.get(chatId);
	if (migratedTo !== undefined) throw upgradedToSupergroup(migratedTo);
	const replyTo = replyTarget(world, bot, chatId, params);
	if (flood) {
		const refusal = flood.check(bot.token, chatId);
		if (refusal) {
			pushBounded(core.floodRefusals, { token: bot.token, method, chat_id: chatId, ...refusal, at: Date.now() }, core.maxRecords);
			throw tooManyRequests(refusal.retry_after);
		}
		flood.record(bot.token, chatId);
	}
	const thread = intParam(params, "message_thread_id");
	const markup = params.reply_markup as { inline_keyboard?: unknown } | undefined;
	const message: Message = {
		message_id: world.messageId(bot.token, chatId),
		from: botSender(bot.user),
		chat: world.chat(chatId),
		date: unixNow(),
		...(thread ? { message_thread_id: thread, is_topic_message: true } : {}),
		...(replyTo ? { reply_to_message: replyTo } : {}),
		...content,
		...(markup && typeof markup === "object" && Array.isArray(markup.inline_keyboard) ? { reply_markup: markup } : {}),
	};
	world.remember(bot.token, message);
	const record: SentRecord = { token: bot.token, method, chat_id: chatId, text: message.text ?? message.caption, at: Date.now(), message_id: message.message_id, params, message };
	pushBounded(core.sent, record, core.maxRecords);
	return message;
}

function sendMessage(core: Core, call: CallContext): Message {
	const chatId = core.world.resolveChatId(call.params);
	const source = stringParam(call.params, "text") ?? "";
	const { text, entities } = formatText(source, stringParam(call.params, "parse_mode") || undefined, call.params.entities);
	const length = text.trim().length;
	if (length === 0) throw badRequest("message text is empty");
	if (length > 4096) throw badRequest("message is too long");
	return deliver(core, call, "sendMessage", chatId, { text, ...(entities.length > 0 ? { entities } : {}) });
}

const fileUniqueId = (prefix: string, source: string) => prefix + createHash("sha256").update(source).digest("base64url").slice(0, 12);
const fileId = (prefix: string) => prefix + randomBytes(48).toString("base64url").slice(0, 60);
const MIME_TYPES: Record<string, string> = { pdf: "application/pdf", txt: "text/plain", json: "application/json", zip: "application/zip", png: "image/png", jpg: "image/jpeg", jpeg: "image/jpeg", csv: "text/csv" };

/** sendPhoto / sendDocument: the file as a file_id or an HTTP URL (no uploads), with an optional caption. */
function sendMedia(kind: "photo" | "document"): Method {
	return (core, call) => {
		const chatId = core.world.resolveChatId(call.params);
		const source = stringParam(call.params, kind);
		if (!source) throw badRequest(`there is no ${kind} in the request`);
		const isUrl = /^https?:\/\//i.test(source);
		if (!isUrl && /[\s/]/.test(source)) throw badRequest("wrong file identifier/HTTP URL specified");
		const rawCaption = stringParam(call.params, "caption");
		const caption = rawCaption ? formatText(rawCaption, stringParam(call.params, "parse_mode") || undefined, call.params.caption_entities) : undefined;
		if (caption && caption.text.length > 1024) throw badRequest("message caption is too long");
		let media: Partial<Message>;
		if (kind === "photo") {
			const sizes: Array<[number, number, number]> = [[90, 67, 1_317], [320, 240, 15_872], [800, 600, 61_024]];
			media = { photo: sizes.map(([width, height, file_size], i) => ({ file_id: i === 2 && !isUrl ? source : fileId("AgACAgIAAxkBAA"), file_unique_id: fileUniqueId("AQAD", `${source}#${i}`), width, height, file_size })) };
		} else {
			const name = isUrl ? decodeURIComponent(new URL(source).pathname.split("/").pop() || "") || "file" : "file";
			const extension = /\.([a-z0-9]+)$/i.exec(name)?.[1]?.toLowerCase() ?? "";
			media = { document: { file_id: isUrl ? fileId("BQACAgIAAxkBAA") : source, file_unique_id: fileUniqueId("AgAD", source), file_name: name, mime_type: MIME_TYPES[extension] ?? "application/octet-stream", file_size: 24_576 } };
		}
		const captionFields = caption ? { caption: caption.text, ...(caption.entities.length > 0 ? { caption_entities: caption.entities } : {}) } : {};
		return deliver(core, call, kind === "photo" ? "sendPhoto" : "sendDocument", chatId, { ...media, ...captionFields });
	};
}

/** Lower-case method name -> canonical name and implementation (Telegram matches method names case-insensitively). */
export const METHODS = new Map<string, { name: string; run: Method }>(
	Object.entries({
		getMe: (_core: Core, { bot }: CallContext) => bot.user,
		setWebhook,
		deleteWebhook,
		getWebhookInfo,
		getUpdates,
		sendMessage,
		sendPhoto: sendMedia("photo"),
		sendDocument: sendMedia("document"),
	}).map(([name, run]) => [name.toLowerCase(), { name, run }]),
);
