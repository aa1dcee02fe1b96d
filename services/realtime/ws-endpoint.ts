/**
 * The plain WebSocket endpoint, /api/v1/ws, for clients without socket.io: the credential is
 * checked at the upgrade (401 there when it is bad, 429 once its address sent too many bad ones),
 * then JSON frames subscribe, unsubscribe and ping, handled in the order they came; events arrive
 * as the socket.io payloads with their `type`. A refused or malformed frame gets an error frame
 * (naming the chat_id / bot_id it named) and the connection stays open.
 */
import { randomUUID } from "node:crypto";
import type { IncomingMessage, Server } from "node:http";
import type { Duplex } from "node:stream";
import { WebSocketServer, type WebSocket } from "ws";
import { isClientError, toApiError } from "../../lib/errors";
import { waitUntil, type CloseReason, type Subscriber, type Topic } from "../../mixins/event-stream/subscription-hub";
import { requestIdFor } from "../../lib/request-id";
import type { Principal } from "../auth/principal";
import type { GatewayEvent } from "../broker/event-log";
import { clientError, namedTopicFields, parseSubscription, requestQueue, SLOW_CLIENT, subscribeStep, TOO_MANY_WAITING, topicFields, type ClientError } from "./protocol";
import { credentialOutsideBody } from "../api/credentials";

export const WS_PATH = "/api/v1/ws";
const MAX_FRAME_BYTES = 64 * 1024;
const PING_EVERY_MS = 30_000;

export interface WsHandlers {
	/**
	 * Resolves an upgrade's credential under the bad-credential throttle of the client's address;
	 * throws UNAUTHORIZED, RATE_LIMITED (throttled) or UNAVAILABLE.
	 */
	authenticate(credential: string, req: IncomingMessage): Promise<Principal>;
	/** Throws RATE_LIMITED when the principal may not open another connection here. */
	admit(principal: Principal): void;
	/** false: refused (over the principal's cap), and the subscriber was closed. */
	connect(subscriber: Subscriber, credential: string): boolean;
	disconnect(subscriberId: string): void;
	subscribe(subscriber: Subscriber, topic: Topic, sinceSeq: number | undefined, authorized: () => void): Promise<void>;
	unsubscribe(subscriberId: string, topic: Topic): boolean;
	/** Per-principal rate limit for frames; throws RATE_LIMITED. */
	charge(principal: Principal): Promise<void>;
	/** Forgets a client that stopped reading, or asks faster than it is answered (the hub's tooSlow), and closes it. */
	tooSlow(subscriber: Subscriber, reason?: CloseReason): void;
	logWarning(message: string): void;
}

/** REST's rule (services/api/credentials.ts): the headers, then the query; an empty value hides nothing. */
function credentialOf(req: IncomingMessage): string | null {
	const { searchParams } = new URL(req.url ?? "/", "http://localhost");
	return credentialOutsideBody({ headers: req.headers, query: { api_key: searchParams.getAll("api_key"), token: searchParams.getAll("token") } }) ?? null;
}

const STATUS_TEXT: Record<number, string> = { 401: "Unauthorized", 404: "Not Found", 429: "Too Many Requests", 503: "Service Unavailable" };

/** Answers an upgrade it will not take as REST answers a request: the error body, X-Request-ID, Retry-After when given. */
export function refuseUpgrade(req: IncomingMessage, socket: Duplex, status: number, error: ClientError, retryAfter?: number): void {
	const body = JSON.stringify({ error });
	const headers = [
		"Content-Type: application/json; charset=utf-8",
		`Content-Length: ${Buffer.byteLength(body)}`,
		`X-Request-ID: ${requestIdFor(req.headers["x-request-id"])}`,
		...(retryAfter !== undefined ? [`Retry-After: ${Math.max(1, Math.ceil(retryAfter))}`] : []),
		"Connection: close",
	];
	socket.end(`HTTP/1.1 ${status} ${STATUS_TEXT[status] ?? "Error"}\r\n${headers.join("\r\n")}\r\n\r\n${body}`);
}

/** Why an upgrade was not let in: 429 (its address is throttled, or the principal is at its connection cap), 503 (auth is away, or the node is full), else 401. */
function refuseCredential(req: IncomingMessage, socket: Duplex, err: unknown): void {
	const error = clientError(err);
	if (error.code === "RATE_LIMITED") return refuseUpgrade(req, socket, 429, error, toApiError(err).retryAfter ?? 1);
	if (error.code === "UNAVAILABLE") return refuseUpgrade(req, socket, 503, error, toApiError(err).retryAfter);
	refuseUpgrade(req, socket, 401, { code: "UNAUTHORIZED", message: error.message });
}

class WsSubscriber implements Subscriber {
	readonly id = `ws:${randomUUID()}`;
	private closing = false;

	constructor(
		private readonly ws: WebSocket,
		public principal: Principal,
		private readonly overflowed: (subscriber: WsSubscriber) => void,
	) {}

	send(event: GatewayEvent): boolean {
		if (this.ws.readyState !== this.ws.OPEN) return true;
		this.ws.send(eventText(event));
		return this.ws.bufferedAmount <= SLOW_CLIENT.maxQueuedBytes;
	}

	drained(): Promise<void> {
		return waitUntil(() => this.ws.readyState !== this.ws.OPEN || this.ws.bufferedAmount < SLOW_CLIENT.maxQueuedBytes / 4);
	}

	/** A reply or notice: a client that sends frames but does not read the answers hits the same cap as for events. */
	frame(data: Record<string, unknown>): void {
		if (this.ws.readyState !== this.ws.OPEN) return;
		this.ws.send(JSON.stringify(data));
		if (!this.closing && this.ws.bufferedAmount > SLOW_CLIENT.maxQueuedBytes) this.overflowed(this);
	}

	revoked(topic: Topic, reason: CloseReason): void {
		this.ended(topic, reason);
	}

	/** A subscription ended by the gateway (revoked, or its replay failed): no code or reason answers the client's own unsubscribe. */
	ended(topic: Topic, reason: { code: string; message: string }): void {
		this.frame({ type: "unsubscribed", ...topicFields(topic), reason: reason.message, code: reason.code });
	}

	close(reason: CloseReason): void {
		this.closing = true;
		this.frame({ type: "error", code: reason.code, message: reason.message });
		// 4000-4999: application codes; the reason text is capped at 123 bytes by the protocol.
		this.ws.close(reason.code === "UNAUTHORIZED" ? 4401 : reason.code === "FORBIDDEN" ? 4403 : 4429, reason.message.slice(0, 120));
		if (reason.code === "RATE_LIMITED") {
			// Nothing more of a flooding client is read, and one that stopped reading never completes the
			// closing handshake: cut off a second later. Not at once: closing a socket whose client
			// still has frames unread here resets it, and the reset discarded the error frame above.
			this.ws.pause();
			setTimeout(() => this.ws.terminate(), CUT_OFF_DELAY_MS).unref();
		}
	}
}

/** How long a client cut off for flooding or not reading gets to read why, before its socket is closed. */
const CUT_OFF_DELAY_MS = 1_000;

/** An event's JSON, made once however many WebSocket clients it goes to (one per subscriber cost 7 µs each). */
const EVENT_TEXT = new WeakMap<GatewayEvent, string>();

function eventText(event: GatewayEvent): string {
	let text = EVENT_TEXT.get(event);
	if (text === undefined) {
		text = JSON.stringify(event);
		EVENT_TEXT.set(event, text);
	}
	return text;
}

export class WsEndpoint {
	private readonly wss = new WebSocketServer({ noServer: true, maxPayload: MAX_FRAME_BYTES, perMessageDeflate: false });
	private readonly pinger: NodeJS.Timeout;
	private readonly alive = new WeakSet<WebSocket>();
	private accepting = true;

	constructor(
		server: Server,
		private readonly handlers: WsHandlers,
		private readonly socketIoPath = "/socket.io",
	) {
		server.on("upgrade", (req: IncomingMessage, socket: Duplex, head: Buffer) => {
			const { pathname } = new URL(req.url ?? "/", "http://localhost");
			if (pathname === WS_PATH) return void this.upgrade(req, socket, head);
			// socket.io answers its own; any other upgrade would hold its socket open unanswered.
			if (!pathname.startsWith(`${this.socketIoPath}/`)) {
				refuseUpgrade(req, socket, 404, { code: "NOT_FOUND", message: `WebSocket endpoints: ${WS_PATH} and socket.io at ${this.socketIoPath}/` });
			}
		});
		this.pinger = setInterval(() => {
			for (const ws of this.wss.clients) {
				if (!this.alive.has(ws)) ws.terminate();
				else {
					this.alive.delete(ws);
					ws.ping();
				}
			}
		}, PING_EVERY_MS);
		this.pinger.unref();
	}

	get connections(): number {
		return this.wss.clients.size;
	}

	private async upgrade(req: IncomingMessage, socket: Duplex, head: Buffer): Promise<void> {
		if (!this.accepting) return refuseUpgrade(req, socket, 503, { code: "UNAVAILABLE", message: "Server shutting down" });
		const credential = credentialOf(req);
		if (!credential) return refuseUpgrade(req, socket, 401, { code: "UNAUTHORIZED", message: "Credentials required: ?token= or Authorization: Bearer" });
		let principal: Principal;
		try {
			principal = await this.handlers.authenticate(credential, req);
			this.handlers.admit(principal);
		} catch (err) {
			return refuseCredential(req, socket, err);
		}
		this.wss.handleUpgrade(req, socket, head, (ws) => this.connected(ws, principal, credential));
	}

	private connected(ws: WebSocket, principal: Principal, credential: string): void {
		const subscriber = new WsSubscriber(ws, principal, (slow) => this.handlers.tooSlow(slow));
		ws.on("error", () => ws.terminate());
		if (!this.handlers.connect(subscriber, credential)) return;
		this.alive.add(ws);
		ws.on("pong", () => this.alive.add(ws));
		ws.on("close", () => this.handlers.disconnect(subscriber.id));
		const inOrder = requestQueue((err) => this.handlers.logWarning(`WebSocket frame failed: ${(err as Error).message}`));
		ws.on("message", (data, isBinary) => {
			const text = data.toString();
			// Frames queued behind a slow one are dropped once the client is gone.
			const queued = inOrder(async () => (ws.readyState === ws.OPEN ? this.onFrame(subscriber, text, isBinary) : undefined));
			if (!queued && ws.readyState === ws.OPEN) this.handlers.tooSlow(subscriber, TOO_MANY_WAITING);
		});
	}

	private async onFrame(subscriber: WsSubscriber, text: string, isBinary: boolean): Promise<void> {
		let frame: unknown;
		try {
			frame = isBinary ? undefined : JSON.parse(text);
		} catch {
			frame = undefined;
		}
		const { action } = (frame ?? {}) as { action?: unknown };
		// An error answering a subscribe or unsubscribe names it: the client may have several under way.
		const answering = action === "subscribe" || action === "unsubscribe" ? { action, ...namedTopicFields(frame) } : {};
		try {
			// Every frame counts, a malformed one too: its error answer costs the server as much.
			await this.handlers.charge(subscriber.principal);
			if (frame === null || typeof frame !== "object" || Array.isArray(frame)) {
				return subscriber.frame({ type: "error", code: "BAD_REQUEST", message: "Frames are JSON objects with an action" });
			}
			if (action === "ping") return subscriber.frame({ action: "pong" });
			if (action !== "subscribe" && action !== "unsubscribe") {
				return subscriber.frame({ type: "error", code: "BAD_REQUEST", message: "action must be subscribe, unsubscribe or ping" });
			}
			const request = parseSubscription(frame);
			if (action === "unsubscribe") {
				this.handlers.unsubscribe(subscriber.id, request.topic);
				return subscriber.frame({ type: "unsubscribed", ...topicFields(request.topic) });
			}
			// Confirmed once authorised: the replay (if any) follows, then live events. The next frame
			// is handled once the subscription is in place, not after its replay.
			await subscribeStep(
				(authorized) => this.handlers.subscribe(subscriber, request.topic, request.sinceSeq, authorized),
				() => subscriber.frame({ type: "subscribed", ...topicFields(request.topic) }),
				(err) => {
					if (!isClientError(err)) this.handlers.logWarning(`WebSocket subscription ended by its replay: ${(err as Error).message}`);
					// Announced as a revocation is: the subscription ended, not a frame of the client's refused.
					subscriber.ended(request.topic, clientError(err));
				},
			);
		} catch (err) {
			subscriber.frame({ type: "error", ...clientError(err), ...answering });
		}
	}

	/** Stops taking connections and closes the open ones (1001: going away). */
	drain(): void {
		this.accepting = false;
		clearInterval(this.pinger);
		for (const ws of this.wss.clients) ws.close(1001, "Server shutting down");
	}

	close(): void {
		this.drain();
		this.wss.close();
	}
}
