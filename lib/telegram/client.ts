/**
 * The Bot API client (undici): keep-alive pools shared by every bot (one for long polls, one for
 * sends, one for control calls), JSON in and out, Telegram's `{ok, result}` / `{ok: false,
 * error_code, description, parameters}` turned into results and typed errors. Tokens sit in the URL
 * path, so no error message built here ever contains the URL.
 */
import { Agent, errors as undiciErrors, request } from "undici";
import { Slots } from "../slots";

/**
 * Every update kind (Bot API 10.0), for setWebhook/getUpdates: Telegram leaves some out unless they
 * are asked for, and sends none that an explicit list does not name, so a kind added to the Bot API
 * must be added here before the gateway receives it (it is then stored raw if not modelled).
 */
export const ALL_UPDATE_KINDS = [
	"message",
	"edited_message",
	"channel_post",
	"edited_channel_post",
	"business_connection",
	"business_message",
	"edited_business_message",
	"deleted_business_messages",
	"message_reaction",
	"message_reaction_count",
	"inline_query",
	"chosen_inline_result",
	"callback_query",
	"shipping_query",
	"pre_checkout_query",
	"purchased_paid_media",
	"poll",
	"poll_answer",
	"my_chat_member",
	"chat_member",
	"chat_join_request",
	"chat_boost",
	"removed_chat_boost",
	"managed_bot",
	"guest_message",
] as const;

/** Telegram's `parameters` of a failure (ResponseParameters), as far as they have the right shape. */
export interface TelegramErrorParameters {
	/** 429: seconds to wait. */
	retry_after?: number;
	/** 400 "group chat was upgraded to a supergroup chat": the supergroup's Telegram id. */
	migrate_to_chat_id?: number;
}

/** Telegram answered `ok: false`. */
export class TelegramApiError extends Error {
	constructor(
		readonly method: string,
		readonly errorCode: number,
		readonly description: string,
		readonly retryAfterSeconds: number | null,
		readonly parameters: TelegramErrorParameters = {},
	) {
		super(`Telegram ${method}: ${errorCode} ${description}`);
		this.name = "TelegramApiError";
	}
}

/**
 * Telegram could not be reached or did not answer. `delivered` says whether the request may have
 * reached Telegram: "no" only when it cannot have been acted on (the connection was never made, or
 * the proxy in front of the Bot API said it could not reach it), so a retry cannot duplicate it.
 */
export class TelegramNetworkError extends Error {
	constructor(
		readonly method: string,
		readonly delivered: "no" | "maybe",
		readonly reason: string,
	) {
		super(`Telegram ${method}: ${reason}`);
		this.name = "TelegramNetworkError";
	}
}

export interface TelegramUser {
	id: number;
	is_bot: boolean;
	first_name: string;
	username?: string;
}

/**
 * The body as text, refused past `max` bytes while it is read: Content-Length alone would let a
 * chunked answer with none grow without bound.
 */
async function readCapped(body: AsyncIterable<Buffer> & { destroy(err?: Error): unknown }, max: number, method: string): Promise<string> {
	const chunks: Buffer[] = [];
	let total = 0;
	for await (const chunk of body) {
		total += chunk.length;
		if (total > max) {
			body.destroy();
			throw new TelegramNetworkError(method, "maybe", `response of more than ${max} bytes is too large`);
		}
		chunks.push(chunk);
	}
	return Buffer.concat(chunks).toString("utf8");
}

export interface TelegramMessage {
	message_id: number;
	date: number;
	chat: { id: number; type: string };
	from?: TelegramUser;
	text?: string;
	[key: string]: unknown;
}

export interface WebhookInfo {
	url: string;
	pending_update_count: number;
	last_error_date?: number;
	last_error_message?: string;
	max_connections?: number;
	allowed_updates?: string[];
}

export interface CallOptions {
	/** Overall limit for headers and body. */
	timeoutMs?: number;
	signal?: AbortSignal;
	/** A long poll (getUpdates): sent through the long-poll pool (TelegramClient). */
	longPoll?: boolean;
	/**
	 * Aborts only the wait for a connection (a sender that lost its lease, a node shutting down): the
	 * call fails as not delivered. A request under way is not cut, which would leave its outcome unknown.
	 */
	waitSignal?: AbortSignal;
}

/**
 * Methods that send, change or remove chat messages (sendMessage, sendChatAction, forwardMessages,
 * copyMessage, editMessageText, deleteMessages, stopMessageLiveLocation...): they go through the send
 * pool. Every other method (getMe, setWebhook, getWebhookInfo, getChat...) is a control call.
 */
export function isSendMethod(method: string): boolean {
	return /^(?:send|forward|copy)[A-Z]|^(?:edit|delete|stop)Message/.test(method);
}

const MAX_RESPONSE_BYTES = 50 * 1024 * 1024;
/** Failures before the request was written: no connection, or a TLS handshake that failed on the certificate. */
const NOT_CONNECTED = new Set([
	"UND_ERR_CONNECT_TIMEOUT",
	"ECONNREFUSED",
	"ENOTFOUND",
	"EAI_AGAIN",
	"EHOSTUNREACH",
	"ENETUNREACH",
	"CERT_HAS_EXPIRED",
	"DEPTH_ZERO_SELF_SIGNED_CERT",
	"SELF_SIGNED_CERT_IN_CHAIN",
	"UNABLE_TO_VERIFY_LEAF_SIGNATURE",
	"UNABLE_TO_GET_ISSUER_CERT_LOCALLY",
	"ERR_TLS_CERT_ALTNAME_INVALID",
]);
/**
 * A page that is not the Bot API's JSON with one of these statuses comes from the proxy in front of
 * it (nginx: "502 Bad Gateway", "503 Service Temporarily Unavailable"), which could not hand the
 * request on: nothing was sent. Any other such page (a 504, which comes after the Bot API took the
 * request and was slow, a 200 cut short) leaves it open.
 */
const PROXY_COULD_NOT_FORWARD = new Set([502, 503]);

function readParameters(value: unknown): TelegramErrorParameters {
	if (!value || typeof value !== "object") return {};
	const { retry_after, migrate_to_chat_id } = value as Record<string, unknown>;
	return {
		...(typeof retry_after === "number" ? { retry_after } : {}),
		...(Number.isSafeInteger(migrate_to_chat_id) ? { migrate_to_chat_id: migrate_to_chat_id as number } : {}),
	};
}

/**
 * Telegram's description as the gateway passes it on (logs, `last_error`, answers to clients): at
 * most 500 characters, control characters escaped (a newline or an ANSI escape could forge or hide
 * log lines), and the bot's token masked should a proxy or a local Bot API server echo the URL.
 */
export function safeDescription(description: unknown, token: string): string {
	let text = String(description ?? "unknown error");
	const secret = token.slice(token.indexOf(":") + 1);
	for (const part of [token, secret.length >= 16 ? secret : ""]) if (part) text = text.split(part).join("<token>");
	// eslint-disable-next-line no-control-regex
	return text.replace(/[\u0000-\u001f\u007f-\u009f\u2028\u2029]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`).slice(0, 500);
}

/** A pool with as many slots as connections: calls wait for a slot, never inside undici. */
interface Pool {
	agent: Agent;
	slots: Slots;
}

function boundedPool(connections: number, connectTimeoutMs: number): Pool {
	return { agent: new Agent({ connections, keepAliveTimeout: 30_000, connect: { timeout: connectTimeoutMs } }), slots: new Slots(connections) };
}

export class TelegramClient {
	/**
	 * Sends: at most `connections` at once, the rest wait for a slot. Only the time after a slot is
	 * taken counts against a call's deadline: a send that waited behind a backlog and then timed out
	 * would be reported as one Telegram may have taken, and never sent again.
	 */
	private readonly sendPool: Pool;
	/** Every other call but long polls, apart so a send backlog never holds up registering a bot or the reconciler. */
	private readonly controlPool: Pool;
	/**
	 * Long polls hold their connection for up to their whole timeout (25 s) each. In the shared pool,
	 * a node polling as many bots as it has connections left every send, getMe and setWebhook waiting
	 * for a poll to end, and the waits counted against their deadlines: a send that never left was
	 * reported as one Telegram may have taken. So they have a pool of their own, unbounded: one
	 * connection per bot this node polls, which its poller leases already bound.
	 */
	private readonly longPollAgent: Agent;

	constructor(
		private readonly root: string,
		options: { connections?: number; controlConnections?: number; defaultTimeoutMs?: number; connectTimeoutMs?: number } = {},
	) {
		this.connectTimeoutMs = options.connectTimeoutMs ?? 5_000;
		this.sendPool = boundedPool(options.connections ?? 128, this.connectTimeoutMs);
		this.controlPool = boundedPool(options.controlConnections ?? 16, this.connectTimeoutMs);
		this.longPollAgent = new Agent({ connections: null, keepAliveTimeout: 30_000, connect: { timeout: this.connectTimeoutMs } });
		this.defaultTimeoutMs = options.defaultTimeoutMs ?? 10_000;
	}

	private readonly defaultTimeoutMs: number;
	private readonly connectTimeoutMs: number;

	async call<T>(token: string, method: string, params: Record<string, unknown> = {}, options: CallOptions = {}): Promise<T> {
		const timeout = options.timeoutMs ?? this.defaultTimeoutMs;
		const pool = options.longPoll ? null : isSendMethod(method) ? this.sendPool : this.controlPool;
		let release: () => void = () => undefined;
		if (pool) {
			try {
				const waitEnds = [options.signal, options.waitSignal].filter((signal): signal is AbortSignal => signal !== undefined);
				// Waiters take turns by bot: one bot's (or tenant's) backlog does not hold up the others'.
				release = await pool.slots.acquire(waitEnds.length > 1 ? AbortSignal.any(waitEnds) : waitEnds[0], token);
			} catch {
				throw new TelegramNetworkError(method, "no", "aborted before it was sent");
			}
		}
		// undici's headers and body timeouts each restart (the body's at every chunk), so a server
		// trickling its answer could hold a call for ever: the whole call has a deadline too, from
		// when it holds a connection.
		const deadline = AbortSignal.timeout(this.connectTimeoutMs + timeout);
		const signal = options.signal ? AbortSignal.any([options.signal, deadline]) : deadline;
		let status: number;
		let text: string;
		try {
			const response = await request(`${this.root}/bot${token}/${method}`, {
				dispatcher: pool ? pool.agent : this.longPollAgent,
				method: "POST",
				headers: { "content-type": "application/json" },
				body: JSON.stringify(params),
				headersTimeout: timeout,
				bodyTimeout: timeout,
				signal,
			});
			status = response.statusCode;
			const length = Number(response.headers["content-length"] ?? 0);
			if (length > MAX_RESPONSE_BYTES) {
				await response.body.dump();
				throw new TelegramNetworkError(method, "maybe", `response of ${length} bytes is too large`);
			}
			text = await readCapped(response.body, MAX_RESPONSE_BYTES, method);
		} catch (err) {
			if (err instanceof TelegramNetworkError) throw err;
			const code = (err as { code?: string }).code ?? (err as { cause?: { code?: string } }).cause?.code ?? "";
			if (options.signal?.aborted) throw new TelegramNetworkError(method, "maybe", "aborted");
			if (deadline.aborted) throw new TelegramNetworkError(method, "maybe", `no whole answer within ${this.connectTimeoutMs + timeout} ms`);
			if (err instanceof undiciErrors.HeadersTimeoutError || err instanceof undiciErrors.BodyTimeoutError) {
				throw new TelegramNetworkError(method, "maybe", `no answer within ${timeout} ms`);
			}
			throw new TelegramNetworkError(method, NOT_CONNECTED.has(code) ? "no" : "maybe", code || (err as Error).name);
		} finally {
			release();
		}
		const delivered = PROXY_COULD_NOT_FORWARD.has(status) ? "no" : "maybe";
		let body: { ok?: boolean; result?: T; error_code?: number; description?: string; parameters?: unknown };
		try {
			body = JSON.parse(text) as typeof body;
		} catch {
			throw new TelegramNetworkError(method, delivered, `HTTP ${status} with a body that is not JSON`);
		}
		if (body === null || typeof body !== "object" || Array.isArray(body)) throw new TelegramNetworkError(method, delivered, `HTTP ${status} with a body that is not an object`);
		if (body.ok === true) return body.result as T;
		// Telegram answers a refusal with its error_code as the HTTP status: a 2xx that is no success is
		// no refusal either, and what became of the request is not known.
		if (status >= 200 && status < 300) throw new TelegramNetworkError(method, delivered, `HTTP ${status} with an answer that is neither a success nor an error`);
		const parameters = readParameters(body.parameters);
		throw new TelegramApiError(method, body.error_code ?? status, safeDescription(body.description, token), parameters.retry_after ?? null, parameters);
	}

	getMe(token: string): Promise<TelegramUser> {
		return this.call(token, "getMe");
	}

	setWebhook(token: string, params: { url: string; secret_token: string; max_connections?: number }): Promise<boolean> {
		return this.call(token, "setWebhook", { ...params, allowed_updates: ALL_UPDATE_KINDS });
	}

	deleteWebhook(token: string): Promise<boolean> {
		return this.call(token, "deleteWebhook", { drop_pending_updates: false });
	}

	getWebhookInfo(token: string): Promise<WebhookInfo> {
		return this.call(token, "getWebhookInfo");
	}

	/** Long poll: waits up to `timeoutSeconds` on Telegram's side, so the HTTP timeout is longer. */
	/** Without `offset`, Telegram answers from its earliest unconfirmed update. */
	getUpdates(token: string, offset: number | undefined, timeoutSeconds: number, signal?: AbortSignal): Promise<Array<{ update_id: number }>> {
		return this.call(token, "getUpdates", { ...(offset !== undefined ? { offset } : {}), limit: 100, timeout: timeoutSeconds, allowed_updates: ALL_UPDATE_KINDS }, {
			timeoutMs: (timeoutSeconds + 10) * 1000,
			signal,
			longPoll: true,
		});
	}

	sendMessage(token: string, params: Record<string, unknown>, options?: CallOptions): Promise<TelegramMessage> {
		return this.call(token, "sendMessage", params, options);
	}

	async close(): Promise<void> {
		await Promise.all([this.sendPool.agent.close(), this.controlPool.agent.close(), this.longPollAgent.close()]);
	}
}
