/**
 * A Telegram Bot API double: a real HTTP server on 127.0.0.1 that answers `/bot<token>/<method>` where the gateway
 * touches the Bot API (getMe, setWebhook, deleteWebhook, getWebhookInfo, getUpdates, sendMessage, sendPhoto,
 * sendDocument), pushes updates to webhooks, long-polls, enforces flood limits, injects faults, and plays users.
 *
 *   const telegram = new TelegramDouble();
 *   const root = await telegram.start();            // TELEGRAM_API_ROOT for the gateway
 *   const token = telegram.addBot({ username: "shop_bot" });
 *   telegram.userSends(token, { chat_id: 42, text: "/start" });
 *   await telegram.waitFor(() => telegram.pendingUpdates(token).length === 0);
 *   await telegram.stop();
 *
 * Modules: telegram-double/http.ts (requests, errors), methods.ts (the Bot API methods), bot.ts (per-bot queue),
 * webhook.ts (pusher), world.ts (chats, messages, the Update factory), formatting.ts (parse_mode), flood.ts.
 */
import { randomBytes, randomInt } from "node:crypto";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { setTimeout as sleep } from "node:timers/promises";
import { BotState } from "./telegram-double/bot";
import { FloodLimiter } from "./telegram-double/flood";
import { ApiError, badRequest, intParam, readParams, sendError, sendJson, sendNginxError, tooManyRequests } from "./telegram-double/http";
import { Described, METHODS, type Core } from "./telegram-double/methods";
import type { AddBotSpec, BotUser, Chat, Fault, FloodRefusal, GetUpdatesCall, Params, PushAttempt, SentRecord, TelegramDoubleOptions, Update, User, UserMessageSpec } from "./telegram-double/types";
import { WebhookPusher } from "./telegram-double/webhook";
import { World } from "./telegram-double/world";

export * from "./telegram-double/types";
export { ApiError } from "./telegram-double/http";
export { OPT_IN_KINDS } from "./telegram-double/bot";

/** Tokens autoCreateBots accepts. */
export const TOKEN_PATTERN = /^\d+:[\w-]{30,}$/;

const DEFAULTS: Required<TelegramDoubleOptions> = {
	autoCreateBots: false,
	floodLimits: false,
	redeliveryDelayMs: 50,
	maxRedeliveryDelayMs: 2000,
	pushTimeoutMs: 10_000,
	maxPendingUpdates: 10_000,
	maxRecords: 10_000,
	maxBodyBytes: 1024 * 1024,
};

export class TelegramDouble {
	/** Every accepted sendMessage / sendPhoto / sendDocument, oldest first. */
	readonly sent: SentRecord[] = [];
	/**
	 * Bot API calls received per method (canonical name, e.g. "sendMessage"), whatever their outcome.
	 * No prototype: a call of "constructor" or "__proto__" counts like any other method name.
	 */
	readonly calls: Record<string, number> = Object.create(null) as Record<string, number>;
	readonly getUpdatesCalls: GetUpdatesCall[] = [];
	readonly floodRefusals: FloodRefusal[] = [];
	/** Bot API calls being answered right now, and the most there were at once (tests may reset it). */
	private callsInFlight = 0;
	peakCallsInFlight = 0;
	private readonly options: Required<TelegramDoubleOptions>;
	private readonly bots = new Map<string, BotState>();
	private readonly pushers = new Map<string, WebhookPusher>();
	private readonly world: World;
	private readonly core: Core;
	private readonly faults: Array<{ method: string; fault: Fault; remaining: number }> = [];
	/** One per request being handled: aborted when its client goes away or the double stops. */
	private readonly requests = new Set<AbortController>();
	private latencyMs = 0;
	private server: Server | undefined;
	private root = "";
	private stopped = false;

	constructor(options: TelegramDoubleOptions = {}) {
		this.options = { ...DEFAULTS, ...options };
		this.world = new World(this.options.maxRecords);
		let generation = 0;
		this.core = {
			world: this.world,
			flood: this.options.floodLimits ? new FloodLimiter() : null,
			maxRecords: this.options.maxRecords,
			sent: this.sent,
			floodRefusals: this.floodRefusals,
			getUpdatesCalls: this.getUpdatesCalls,
			nextWebhookGeneration: () => ++generation,
			webhookChanged: (bot) => {
				const pusher = this.pushers.get(bot.token)!;
				pusher.reset();
				pusher.pump();
			},
		};
	}

	/** The root URL (TELEGRAM_API_ROOT), once started. */
	get url(): string {
		return this.root;
	}

	async start(port = 0): Promise<string> {
		if (this.server) throw new Error("the Telegram double is already started");
		const server = createServer((req, res) => void this.handle(req, res));
		await new Promise<void>((resolve, reject) => {
			server.once("error", reject);
			server.listen(port, "127.0.0.1", () => {
				server.off("error", reject);
				resolve();
			});
		});
		this.server = server;
		this.root = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
		return this.root;
	}

	/** Cuts every open call (hung ones included), aborts webhook pushes, clears every timer, closes the server. */
	async stop(): Promise<void> {
		if (this.stopped) return;
		this.stopped = true;
		for (const request of this.requests) request.abort();
		await Promise.all([...this.pushers.values()].map((pusher) => pusher.stop()));
		const server = this.server;
		if (server) {
			await new Promise<void>((resolve) => {
				server.close(() => resolve());
				server.closeAllConnections();
			});
		}
	}

	/** Registers a bot; returns its token (by default `<id>:<35 random url-safe characters>`). */
	addBot(spec: AddBotSpec = {}): string {
		if (spec.token !== undefined && !/^\d+:[\w-]+$/.test(spec.token)) throw new Error(`not a bot token: ${spec.token}`);
		const id = spec.id ?? (spec.token ? Number(spec.token.split(":")[0]) : randomInt(1_000_000_000, 8_000_000_000));
		const token = spec.token ?? `${id}:${randomBytes(27).toString("base64url").slice(0, 35)}`;
		if (this.bots.has(token)) throw new Error(`bot ${id} is already registered`);
		const user: BotUser = {
			id,
			is_bot: true,
			first_name: spec.first_name ?? `Test Bot ${id}`,
			username: spec.username ?? `test_${id}_bot`,
			can_join_groups: true,
			can_read_all_group_messages: false,
			supports_inline_queries: false,
			can_connect_to_business: false,
			has_main_web_app: false,
		};
		const bot = new BotState(token, user, this.options.maxPendingUpdates, randomInt(100_000_000, 900_000_000));
		this.bots.set(token, bot);
		this.pushers.set(token, new WebhookPusher(bot, this.options));
		return token;
	}

	/** The bot's state (webhook, pending, pushLog, ...); throws for an unknown token. */
	bot(token: string): BotState {
		const bot = this.botFor(token);
		if (!bot) throw new Error(`unknown bot token ${token}`);
		return bot;
	}

	/**
	 * /revoke at BotFather: the bot (its id, webhook, allowed_updates, pending updates, chats) lives on
	 * under a new token, returned; the old one answers 401 to every method, and a getUpdates waiting
	 * with it is ended with 401.
	 */
	revokeToken(token: string): string {
		const bot = this.bot(token);
		const pusher = this.pushers.get(token)!;
		const fresh = `${bot.user.id}:${randomBytes(27).toString("base64url").slice(0, 35)}`;
		this.bots.delete(token);
		this.pushers.delete(token);
		bot.token = fresh;
		this.bots.set(fresh, bot);
		this.pushers.set(fresh, pusher);
		bot.poller?.cancel(new ApiError(401, "Unauthorized"));
		return fresh;
	}

	pendingUpdates(token: string): Update[] {
		return [...this.bot(token).pending];
	}

	/** Updates allowed_updates kept from being delivered. */
	skippedUpdates(token: string): Update[] {
		return [...this.bot(token).skipped];
	}

	pushLog(token: string): PushAttempt[] {
		return this.bot(token).pushLog;
	}

	/** Makes a chat known (e.g. so "@username" resolves as a chat_id). */
	addChat(chat: Partial<Chat> & { id: number }): Chat {
		return this.world.chat(chat.id, chat);
	}

	/** Sends to this chat fail with 400 "Bad Request: chat not found". */
	markChatMissing(chatId: number): void {
		this.world.missingChats.add(chatId);
	}

	/** Sends to this chat fail with 403 "Forbidden: bot was blocked by the user". */
	markBotBlocked(chatId: number): void {
		this.world.blockedChats.add(chatId);
	}

	/**
	 * The group became a supergroup: sends to the old id fail with 400 "Bad Request: group chat was
	 * upgraded to a supergroup chat" and `parameters.migrate_to_chat_id`. (The service messages Telegram
	 * sends to the bot then are the test's to play, with userSends.)
	 */
	migrateChat(groupId: number, supergroupId: number): void {
		this.world.migratedChats.set(groupId, supergroupId);
		this.world.chat(supergroupId, { type: "supergroup", title: this.world.chat(groupId).title });
	}

	/** The next `times` calls of `method` (case-insensitive; "*" for any) suffer `fault`. */
	failNext(method: string, fault: Fault, times = 1): void {
		this.faults.push({ method: method.toLowerCase(), fault, remaining: times });
	}

	/** Every Bot API call is answered this much later. */
	setLatency(ms: number): void {
		this.latencyMs = Math.max(0, ms);
	}

	clearFaults(): void {
		this.faults.length = 0;
		this.latencyMs = 0;
	}

	/** A user writes a message (private chat for chat_id > 0, group otherwise); returns the enqueued Update. */
	userSends(token: string, spec: UserMessageSpec): Update {
		return this.enqueue(this.bot(token), { message: this.world.userMessage(token, spec) });
	}

	userEdits(token: string, spec: { chat_id: number; message_id: number; text: string }): Update {
		return this.enqueue(this.bot(token), this.world.edited(token, spec));
	}

	/** A user presses an inline button under a message: a callback_query update. */
	userClicks(token: string, spec: { chat_id: number; message_id: number; data: string; from?: Partial<User> }): Update {
		return this.enqueue(this.bot(token), this.world.callbackQuery(token, spec));
	}

	/** A chat_member update: the user joins the group (left -> member). */
	memberJoins(token: string, spec: { chat_id: number; user_id: number; from?: Partial<User> }): Update {
		return this.enqueue(this.bot(token), this.world.memberJoined(spec));
	}

	/** Any update; update_id is assigned when missing and kept when given (duplicates included). */
	enqueueUpdate(token: string, update: Partial<Update>): Update {
		return this.enqueue(this.bot(token), update);
	}

	/** Resolves once `predicate` holds (checked every `intervalMs`); rejects after `timeoutMs`. */
	async waitFor(predicate: () => boolean | Promise<boolean>, timeoutMs = 5000, intervalMs = 10): Promise<void> {
		const deadline = Date.now() + timeoutMs;
		while (!(await predicate())) {
			if (Date.now() >= deadline) throw new Error(`TelegramDouble.waitFor: condition not met within ${timeoutMs} ms`);
			await sleep(intervalMs);
		}
	}

	private enqueue(bot: BotState, partial: Partial<Update>): Update {
		const update = bot.enqueue(partial);
		this.pushers.get(bot.token)?.pump();
		bot.poller?.wake();
		return structuredClone(update);
	}

	private botFor(token: string): BotState | undefined {
		const bot = this.bots.get(token);
		if (bot || !this.options.autoCreateBots || !TOKEN_PATTERN.test(token)) return bot;
		this.addBot({ token });
		return this.bots.get(token);
	}

	private takeFault(method: string): Fault | undefined {
		const index = this.faults.findIndex((entry) => entry.method === "*" || entry.method === method.toLowerCase());
		if (index < 0) return undefined;
		const entry = this.faults[index]!;
		if (--entry.remaining <= 0) this.faults.splice(index, 1);
		return entry.fault;
	}

	private count(method: string): void {
		if (method in this.calls || Object.keys(this.calls).length < 1000) this.calls[method] = (this.calls[method] ?? 0) + 1;
	}

	private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
		const request = new AbortController();
		this.requests.add(request);
		res.once("close", () => {
			request.abort();
			this.requests.delete(request);
		});
		try {
			const url = new URL(req.url ?? "/", "http://127.0.0.1");
			if (url.pathname.startsWith("/_double/")) await this.control(req, res, url);
			else {
				this.peakCallsInFlight = Math.max(this.peakCallsInFlight, ++this.callsInFlight);
				try {
					await this.botApi(req, res, url, request.signal);
				} finally {
					this.callsInFlight -= 1;
				}
			}
		} catch (error) {
			if (request.signal.aborted) res.destroy();
			else if (error instanceof ApiError) sendError(res, error);
			else {
				console.error("Telegram double: unexpected error", error);
				sendJson(res, 500, { ok: false, error_code: 500, description: "Internal Server Error" });
			}
		}
	}

	private async botApi(req: IncomingMessage, res: ServerResponse, url: URL, signal: AbortSignal): Promise<void> {
		const route = /^\/bot([^/]*)\/([^/]*)$/.exec(url.pathname);
		if (!route) throw new ApiError(404, "Not Found");
		const token = decodeURIComponent(route[1]!);
		const method = METHODS.get(route[2]!.toLowerCase());
		this.count(method?.name ?? route[2]!);
		const bot = this.botFor(token);
		if (!bot) throw /^\d+:[\w-]+$/.test(token) ? new ApiError(401, "Unauthorized") : new ApiError(404, "Not Found");
		if (!method) throw new ApiError(404, "Not Found: method not found");
		const params = await readParams(req, url, this.options.maxBodyBytes);
		const fault = this.takeFault(method.name);
		const delay = this.latencyMs + (fault && "delayMs" in fault ? fault.delayMs : 0);
		if (delay > 0) await sleep(delay, undefined, { signal });
		const clientGone = () => new Promise((resolve) => (signal.aborted ? resolve(undefined) : signal.addEventListener("abort", resolve, { once: true })));
		if (fault && "hang" in fault) {
			await clientGone();
			res.destroy();
			return;
		}
		if (fault && "answer" in fault) return sendJson(res, 200, fault.answer);
		if (fault && "status" in fault) {
			if (fault.status === 429) throw tooManyRequests(fault.retry_after);
			if (fault.status === 500) throw new ApiError(500, "Internal Server Error");
			return sendNginxError(res, fault.status);
		}
		const result = await method.run(this.core, { bot, params, signal });
		// Done (a message delivered), but the answer is late or never comes: the caller cannot tell.
		if (fault && "acceptThenHang" in fault) {
			await clientGone();
			res.destroy();
			return;
		}
		if (fault && "acceptThenDelayMs" in fault) await sleep(fault.acceptThenDelayMs, undefined, { signal }).catch(() => undefined);
		if (signal.aborted) return void res.destroy();
		sendJson(res, 200, result instanceof Described ? { ok: true, result: result.result, description: result.description } : { ok: true, result });
	}

	/** The control surface for trying the gateway by hand: /_double/bots, /_double/bot<token>/{sent,pending,pushLog,userSends,...}. */
	private async control(req: IncomingMessage, res: ServerResponse, url: URL): Promise<void> {
		if (url.pathname === "/_double/bots" && req.method === "GET") {
			const bots = [...this.bots.values()].map((bot) => ({
				token: bot.token,
				user: bot.user,
				webhook_url: bot.webhook?.url ?? "",
				pending_update_count: bot.pending.length,
				sent_count: this.sent.filter((record) => record.token === bot.token).length,
			}));
			return sendJson(res, 200, { ok: true, result: bots });
		}
		const route = /^\/_double\/bot([^/]+)\/(\w+)$/.exec(url.pathname);
		if (!route) throw new ApiError(404, "Not Found");
		const token = decodeURIComponent(route[1]!);
		if (!this.botFor(token)) throw new ApiError(401, "Unauthorized");
		const reads: Record<string, () => unknown> = {
			sent: () => this.sent.filter((record) => record.token === token),
			pending: () => this.pendingUpdates(token),
			pushLog: () => this.pushLog(token),
		};
		const read = reads[route[2]!];
		if (read && req.method === "GET") return sendJson(res, 200, { ok: true, result: read() });
		if (req.method !== "POST") throw new ApiError(404, "Not Found");
		const body = await readParams(req, url, this.options.maxBodyBytes);
		const int = (name: string): number => {
			const value = intParam(body, name);
			if (value === undefined) throw badRequest(`${name} must be an integer`);
			return value;
		};
		const text = (name: string): string => String(body[name] ?? "");
		const actions: Record<string, () => Update> = {
			userSends: () => this.userSends(token, { ...(body as Params), chat_id: int("chat_id") } as UserMessageSpec),
			userEdits: () => this.userEdits(token, { chat_id: int("chat_id"), message_id: int("message_id"), text: text("text") }),
			userClicks: () => this.userClicks(token, { chat_id: int("chat_id"), message_id: int("message_id"), data: text("data") }),
			memberJoins: () => this.memberJoins(token, { chat_id: int("chat_id"), user_id: int("user_id") }),
			enqueueUpdate: () => this.enqueueUpdate(token, body as Partial<Update>),
		};
		const action = actions[route[2]!];
		if (!action) throw new ApiError(404, "Not Found");
		sendJson(res, 200, { ok: true, result: action() });
	}
}
