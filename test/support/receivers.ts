/**
 * Webhook receivers for the delivery tests: real HTTP servers on 127.0.0.1 (port 0) with scripted
 * answers (always 200, fail N times then 200, hang, 429 with Retry-After, 410, a redirect, requests
 * held until a gate opens), recording every request's headers, raw body and arrival time; plus the
 * few gateway-side helpers those tests share (creating webhooks, reading the delivery log, moving
 * the retry schedule and the breaker forward as an operator's clock would, and verifying signatures
 * with the standardwebhooks package).
 */
import { createHmac } from "node:crypto";
import { createServer, type IncomingHttpHeaders, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { setTimeout as sleep } from "node:timers/promises";
import { Webhook } from "standardwebhooks";
import { ALL_SERVICES } from "../../lib/config";
import type { HttpResult } from "./harness";
import { freePort } from "./processes";
import type { TelegramGateway } from "./telegram-gateway";
import { userWrites } from "./chat-helpers";

/** What a receiver got: one request. */
export interface ReceivedRequest {
	/** 0 for the receiver's first request. */
	index: number;
	/** Date.now() when the request's headers arrived. */
	at: number;
	method: string;
	path: string;
	headers: IncomingHttpHeaders;
	rawBody: string;
	/** The JSON body (API.md's delivery body), or null when it was not JSON. */
	body: DeliveryBody | null;
	/** The status the receiver answered with; null while pending or when it never answered. */
	answered: number | null;
}

export interface DeliveryBody {
	event_id: string;
	event: string;
	seq: number;
	bot_id: number | null;
	chat_id: number | null;
	message?: Record<string, unknown> & { id: number; text?: string | null; seq: number; telegram_message_id: number };
	update?: unknown;
	timestamp: string;
	[field: string]: unknown;
}

/** An answer: a status with optional headers and body (`trickle`: a byte every 100 ms, never ending), or no answer at all. */
export type Reply = { status: number; headers?: Record<string, string>; body?: string; delayMs?: number; trickle?: true } | { hang: true };

/** Decides the answer to the `index`-th request; may wait (a gate) before answering. */
export type Behaviour = (request: ReceivedRequest, index: number) => Reply | Promise<Reply>;

export const ok = (body = "ok"): Behaviour => () => ({ status: 200, body });
export const failTimes = (n: number, status = 500): Behaviour => (_r, index) => (index < n ? { status, body: `failure ${index + 1}` } : { status: 200, body: "ok" });
export const always = (status: number, body = ""): Behaviour => () => ({ status, body });
export const hang = (): Behaviour => () => ({ hang: true });
/** Answers `status` at once, then a body that never ends. */
export const trickle = (status = 200): Behaviour => () => ({ status, trickle: true });
export const retryAfter = (value: string, times = 1): Behaviour => (_r, index) => (index < times ? { status: 429, headers: { "retry-after": value }, body: "slow down" } : { status: 200, body: "ok" });
export const gone = (): Behaviour => () => ({ status: 410, body: "gone" });
export const redirectTo = (location: string, status = 302): Behaviour => () => ({ status, headers: { location }, body: "moved" });

/** A gate requests wait at until it opens (then every waiting and later request passes). */
export class Gate {
	private opened = false;
	private waiters: Array<() => void> = [];
	open(): void {
		this.opened = true;
		for (const wake of this.waiters.splice(0)) wake();
	}
	wait(): Promise<void> {
		return this.opened ? Promise.resolve() : new Promise((resolve) => this.waiters.push(resolve));
	}
}

/** Holds every request at `gate`, then answers `then`. */
export const heldAt = (gate: Gate, then: Behaviour = ok()): Behaviour => async (request, index) => {
	await gate.wait();
	return then(request, index);
};

export class Receiver {
	readonly requests: ReceivedRequest[] = [];
	url = "";
	/** Requests being handled right now, and the most there ever were at once. */
	inFlight = 0;
	maxInFlight = 0;
	private server: Server | undefined;
	private readonly closers = new Set<() => void>();

	constructor(public behaviour: Behaviour = ok(), private readonly path = "/hook") {}

	async start(): Promise<this> {
		const server = createServer((req, res) => void this.handle(req, res));
		await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", () => resolve()));
		this.server = server;
		this.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}${this.path}`;
		return this;
	}

	/** The delivery bodies received, in arrival order. */
	get bodies(): DeliveryBody[] {
		return this.requests.map((r) => r.body).filter((b): b is DeliveryBody => b !== null);
	}

	/** Requests carrying a message whose text is `text`. */
	withText(text: string): ReceivedRequest[] {
		return this.requests.filter((r) => r.body?.message?.text === text);
	}

	/** Resolves once `predicate` holds; rejects (saying what arrived) after `timeoutMs`. */
	async waitFor(predicate: (requests: ReceivedRequest[]) => boolean, timeoutMs = 10_000, what = "condition"): Promise<void> {
		const deadline = Date.now() + timeoutMs;
		while (!predicate(this.requests)) {
			if (Date.now() > deadline) {
				const seen = this.requests.map((r) => `${r.body?.event ?? "?"}#${r.body?.seq ?? "?"}->${r.answered ?? "-"}`).join(", ");
				throw new Error(`receiver ${this.url}: ${what} not met within ${timeoutMs} ms (got ${this.requests.length}: ${seen})`);
			}
			await sleep(20);
		}
	}

	waitForCount(count: number, timeoutMs = 10_000): Promise<void> {
		return this.waitFor((r) => r.length >= count, timeoutMs, `${count} requests`);
	}

	/** Closes the server and cuts every connection (hanging and held requests included). */
	async close(): Promise<void> {
		for (const close of this.closers) close();
		const server = this.server;
		if (!server) return;
		this.server = undefined;
		await new Promise<void>((resolve) => {
			server.close(() => resolve());
			server.closeAllConnections();
		});
	}

	private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
		const at = Date.now();
		this.inFlight += 1;
		this.maxInFlight = Math.max(this.maxInFlight, this.inFlight);
		let counted = true;
		const done = () => {
			if (counted) this.inFlight -= 1;
			counted = false;
		};
		res.once("close", done);
		const chunks: Buffer[] = [];
		for await (const chunk of req) chunks.push(chunk as Buffer);
		const rawBody = Buffer.concat(chunks).toString("utf8");
		let body: DeliveryBody | null;
		try {
			body = JSON.parse(rawBody) as DeliveryBody;
		} catch {
			body = null;
		}
		const request: ReceivedRequest = { index: this.requests.length, at, method: req.method ?? "", path: req.url ?? "", headers: req.headers, rawBody, body, answered: null };
		this.requests.push(request);
		const reply = await this.behaviour(request, request.index);
		if ("hang" in reply) {
			// Never answers: waits until the client gives up or the receiver closes.
			await new Promise<void>((resolve) => {
				const stop = () => {
					this.closers.delete(stop);
					resolve();
				};
				this.closers.add(stop);
				res.once("close", stop);
			});
			res.destroy();
			return;
		}
		if (reply.delayMs) await sleep(reply.delayMs);
		if (res.destroyed) return;
		request.answered = reply.status;
		res.writeHead(reply.status, { "content-type": "text/plain", ...reply.headers });
		if (reply.trickle) {
			const drip = setInterval(() => res.write("."), 100);
			const stop = () => {
				clearInterval(drip);
				this.closers.delete(stop);
				res.destroy();
			};
			this.closers.add(stop);
			res.once("close", stop);
			return;
		}
		res.end(reply.body ?? "");
	}
}

export function startReceiver(behaviour: Behaviour = ok(), path = "/hook"): Promise<Receiver> {
	return new Receiver(behaviour, path).start();
}

/** A URL on a loopback port nothing listens on. */
export async function closedPortUrl(): Promise<string> {
	return `http://127.0.0.1:${await freePort()}/hook`;
}

// ---- signatures, checked with the standardwebhooks package ----------------------------------

/** Standard Webhooks verification of a received request with `secret`; throws when it does not verify. */
export function verifyWith(secret: string, request: ReceivedRequest): unknown {
	const header = (name: string) => String(request.headers[name] ?? "");
	return new Webhook(secret).verify(request.rawBody, {
		"webhook-id": header("webhook-id"),
		"webhook-timestamp": header("webhook-timestamp"),
		"webhook-signature": header("webhook-signature"),
	});
}

export function verifies(secret: string, request: ReceivedRequest): boolean {
	try {
		verifyWith(secret, request);
		return true;
	} catch {
		return false;
	}
}

/** `sha256=<hex HMAC-SHA256 of the body keyed by the whole secret string>`, computed here. */
export function legacySignature(secret: string, rawBody: string): string {
	return `sha256=${createHmac("sha256", secret).update(rawBody).digest("hex")}`;
}

// ---- the gateway side --------------------------------------------------------------------------

/** Every service but gRPC (its fixed port would collide with other gateways running in parallel). */
export const WEBHOOK_TEST_ENV = { SERVICES: ALL_SERVICES.filter((s) => s !== "grpc").join(",") };

export interface WebhookBody {
	id: number;
	url: string;
	scope: string;
	bot_id: number | null;
	chat_ids: number[] | null;
	reply_to_message_id: number | null;
	event_types: string[] | null;
	ordered: boolean;
	max_concurrency: number;
	is_active: boolean;
	disabled_reason: string | null;
	previous_secret_expires_at: string | null;
	breaker?: { state: string; open_until: string | null };
	secret?: string;
	created_at: string;
	updated_at: string;
}

export interface AttemptBody {
	attempt: number;
	at: string;
	status_code: number | null;
	duration_ms: number;
	error: string | null;
	response_excerpt: string | null;
}

export interface DeliveryRecord {
	id: number;
	webhook_id: number;
	event_id: string;
	event_seq: number;
	event: string;
	chat_id: number | null;
	status: "pending" | "in_flight" | "succeeded" | "failed" | "dead";
	attempts: number;
	next_attempt_at: string | null;
	last_status_code: number | null;
	last_error: string | null;
	delivered_at: string | null;
	log: AttemptBody[];
}

/** POST /webhooks; fails the test unless 201. */
export async function createWebhook(t: TelegramGateway, body: Record<string, unknown>, token?: string): Promise<WebhookBody & { secret: string }> {
	const res = await t.api<WebhookBody & { secret: string }>("POST", "/webhooks", body, token);
	if (res.status !== 201) throw new Error(`POST /webhooks answered ${res.status}: ${res.text}`);
	return res.body;
}

/** The delivery log of a webhook (newest first), every page. */
export async function deliveriesOf(t: TelegramGateway, webhookId: number, query = ""): Promise<DeliveryRecord[]> {
	const all: DeliveryRecord[] = [];
	let cursor: string | null = null;
	do {
		const sep = query ? "&" : "";
		const path: string = `/webhooks/${webhookId}/deliveries?limit=200${sep}${query}${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ""}`;
		const res: HttpResult<{ data: DeliveryRecord[]; next_cursor: string | null }> = await t.api("GET", path);
		if (res.status !== 200) throw new Error(`GET ${path} answered ${res.status}: ${res.text}`);
		all.push(...res.body.data);
		cursor = res.body.next_cursor;
	} while (cursor);
	return all;
}

/** Polls the delivery log until `predicate` holds; returns that log. */
export async function waitForDeliveries(
	t: TelegramGateway,
	webhookId: number,
	predicate: (log: DeliveryRecord[]) => boolean,
	timeoutMs = 10_000,
	what = "condition",
): Promise<DeliveryRecord[]> {
	const deadline = Date.now() + timeoutMs;
	for (;;) {
		const log = await deliveriesOf(t, webhookId);
		if (predicate(log)) return log;
		if (Date.now() > deadline) {
			throw new Error(`webhook ${webhookId}: ${what} not met within ${timeoutMs} ms: ${JSON.stringify(log.map((d) => ({ id: d.id, seq: d.event_seq, status: d.status, attempts: d.attempts })))}`);
		}
		await sleep(50);
	}
}

/** Makes a webhook's waiting deliveries due now (as if their retry time had come) and wakes the workers. */
export async function fastForward(t: TelegramGateway, webhookId: number): Promise<void> {
	await t.gw.runtime.db.sequelize.query("UPDATE webhook_deliveries SET next_attempt_at = :now WHERE webhook_id = :id AND status IN ('pending', 'failed')", {
		replacements: { now: new Date(Date.now() - 1), id: webhookId },
	});
	await t.gw.broker.broadcast("delivery.wake", {});
}

/** Ends a webhook's open period now (as if 60 s had passed): the breaker is half-open. */
export async function expireBreaker(t: TelegramGateway, webhookId: number): Promise<void> {
	await t.gw.runtime.state.set(`breaker:${webhookId}:open_until`, String(Date.now() - 1_000), 3_600_000);
	await t.gw.broker.broadcast("delivery.wake", {});
}

/** Turns off every active webhook (the end of a test), so later tests' events reach none of them. */
export async function deactivateAllWebhooks(t: TelegramGateway): Promise<void> {
	await t.gw.runtime.db.models.Webhook.update({ is_active: false, disabled_reason: "test finished" }, { where: { is_active: true } });
	await t.gw.broker.broadcast("webhooks.changed", {});
}

/** Polls `probe` until it is true; throws after `timeoutMs`. */
export async function eventually(probe: () => boolean | Promise<boolean>, timeoutMs = 10_000, what = "condition"): Promise<void> {
	const deadline = Date.now() + timeoutMs;
	while (!(await probe())) {
		if (Date.now() > deadline) throw new Error(`${what} not met within ${timeoutMs} ms`);
		await sleep(25);
	}
}

/**
 * What a webhook test file shares: the receivers it started (closed after each test, with every
 * webhook deactivated), and fresh private chats of a bot with a user writing in them.
 */
export class WebhookScene {
	t!: TelegramGateway;
	bot!: { id: number; token: string };
	private readonly receivers: Receiver[] = [];

	constructor(private nextChat: number) {}

	async receiver(behaviour?: Behaviour, path?: string): Promise<Receiver> {
		const r = await startReceiver(behaviour, path);
		this.receivers.push(r);
		return r;
	}

	/** A fresh private chat of `bot` (its first message is stored before any webhook of the test exists). */
	async newChat(bot = this.bot) {
		const telegramId = ++this.nextChat;
		const { chatId, message } = await userWrites(this.t, bot.token, bot.id, { chat_id: telegramId, text: `hello from ${telegramId}` });
		return { chatId, telegramId, first: message };
	}

	/** The user of a private chat sends these texts (Telegram pushes them to the gateway). */
	say(telegramId: number, ...texts: string[]): void {
		for (const text of texts) this.t.telegram.userSends(this.bot.token, { chat_id: telegramId, text });
	}

	async reset(): Promise<void> {
		await deactivateAllWebhooks(this.t);
		await Promise.all(this.receivers.splice(0).map((r) => r.close()));
	}
}

