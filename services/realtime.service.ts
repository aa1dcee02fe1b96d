/**
 * realtime: live events for socket.io clients (moleculer-io, on the api node's HTTP server, path
 * /socket.io) and plain WebSocket clients (/api/v1/ws). Credentials are checked at the handshake,
 * under the bad-credential throttle REST and gRPC apply to the client's address;
 * `subscribe` / `unsubscribe` (with an ack) are the only things a socket can ask, handled in the
 * order it asked; events arrive named by their type. It runs on every api node; each pushes the cluster's events to its own
 * sockets (mixins/event-stream.mixin.ts does the ACL, replay and revocation).
 *
 * Slow clients: a socket with more than 1,000 packets or 8 MB waiting to be written, or 1,000
 * requests waiting to be answered, is closed, so one stalled or flooding client cannot grow the
 * server's memory. Nor can one credential: it holds at most
 * LIVE_CONNECTIONS_PER_PRINCIPAL live connections on a node, and its user (with all its API keys)
 * LIVE_CONNECTIONS_PER_USER (the event-stream mixin counts them), each with at most
 * SUBSCRIPTIONS_PER_CONNECTION subscriptions.
 */
import { randomUUID } from "node:crypto";
import type { IncomingMessage, Server as HttpServer } from "node:http";
import type { ServiceSchema, ServiceSettingSchema } from "moleculer";
import SocketIOService from "moleculer-io";
import type { Server as SocketServer, Socket } from "socket.io";
import { resolveThrottled } from "../lib/credential-throttle";
import { fail, GatewayError, isClientError } from "../lib/errors";
import { refuseWhenEmpty, takePrincipalToken } from "../lib/rate-limit";
import { requestIdFor } from "../lib/request-id";
import { EventStreamMixin, type EventStreamThis } from "../mixins/event-stream.mixin";
import { waitUntil, type CloseReason, type Subscriber, type Topic } from "../mixins/event-stream/subscription-hub";
import { clientAddress } from "./api/http";
import type { Principal } from "./auth/principal";
import type { GatewayEvent } from "./broker/event-log";
import { clientError, parseSubscription, requestQueue, SLOW_CLIENT, subscribeStep, TOO_MANY_WAITING, topicFields } from "./realtime/protocol";
import { emitEvent, writeBufferBytes, type QueuedPacket } from "./realtime/socket-packets";
import { sessionCap } from "./realtime/session-cap";
import { WsEndpoint } from "./realtime/ws-endpoint";

type Ack = (answer: Record<string, unknown>) => void;

const SOCKET_IO_PATH = "/socket.io";

interface RealtimeLocalVars {
	io: SocketServer;
	ws: WsEndpoint;
}

interface RealtimeMethods {
	socketAuthorize(socket: Socket): Promise<Principal>;
	handshake(credential: string, req: IncomingMessage): Promise<Principal>;
	inOrder(socket: Socket, request: () => Promise<void>): void;
	onSubscribe(socket: Socket, payload: unknown, ack: unknown): Promise<void>;
	onUnsubscribe(socket: Socket, payload: unknown, ack: unknown): Promise<void>;
	charge(principal: Principal): Promise<void>;
	reply(socket: Socket, ack: unknown, answer: Record<string, unknown>): void;
	drain(): Promise<void>;
}

type RealtimeThis = EventStreamThis & RealtimeLocalVars & RealtimeMethods;

/** What a socket carries besides socket.io's own state. */
interface SocketData {
	principal: Principal;
	credential: string;
	subscriber: Subscriber;
	/** The socket's subscribe / unsubscribe requests, one at a time in the order they came. */
	enqueue(request: () => Promise<void>): boolean;
}

/** A client may emit without a payload: then the ack is the only argument. */
function requestArgs(args: unknown[]): { payload: unknown; ack: unknown } {
	const ack = args[args.length - 1];
	return { payload: args.length > 1 || typeof ack !== "function" ? args[0] : undefined, ack };
}

const serviceOf = (socket: Socket) => (socket as unknown as { $service: RealtimeThis }).$service;

function credentialOf(socket: Socket): string | null {
	const { auth, query } = socket.handshake;
	for (const candidate of [auth?.token, auth?.api_key, query?.token, query?.api_key]) {
		if (typeof candidate === "string" && candidate.length > 0) return candidate;
	}
	return null;
}

/**
 * Packets and bytes socket.io and the transport hold for a client that has not read them yet: what
 * engine.io keeps while the transport is not writable, and what the WebSocket has not sent. Without
 * the former a stalled client held up to 1,000 packets of any size (54 MB of 60 KB events).
 */
function queued(socket: Socket): { packets: number; bytes: number } {
	const conn = socket.conn as unknown as { writeBuffer?: QueuedPacket[]; transport?: { socket?: { bufferedAmount?: number } } };
	const buffer = conn.writeBuffer ?? [];
	return { packets: buffer.length, bytes: writeBufferBytes(buffer) + (conn.transport?.socket?.bufferedAmount ?? 0) };
}

function socketSubscriber(socket: Socket, principal: Principal): Subscriber {
	return {
		id: `io:${socket.id}:${randomUUID()}`,
		principal,
		send(event: GatewayEvent): boolean {
			emitEvent(socket, event);
			return !overCap(socket);
		},
		revoked(topic: Topic, reason: CloseReason) {
			socket.emit("unsubscribed", { ...topicFields(topic), code: reason.code, reason: reason.message });
		},
		close(reason: CloseReason) {
			socket.emit("error", { code: reason.code, message: reason.message });
			socket.disconnect(true);
			// A client that stopped reading never drains a graceful close: drop what it left queued.
			if (reason.code === "RATE_LIMITED") socket.conn.close(true);
		},
		drained: () => waitUntil(() => socket.disconnected || queued(socket).packets < SLOW_CLIENT.maxQueuedPackets / 4),
	};
}

function overCap(socket: Socket): boolean {
	const { packets, bytes } = queued(socket);
	return packets > SLOW_CLIENT.maxQueuedPackets || bytes > SLOW_CLIENT.maxQueuedBytes;
}

const RealtimeService: ServiceSchema<ServiceSettingSchema, RealtimeThis> = {
	name: "realtime",
	// Moleculer's typings cannot express a mixin whose `this` is wider than Service: cast here.
	mixins: [SocketIOService as unknown as ServiceSchema, EventStreamMixin as unknown as ServiceSchema],

	settings: {
		server: false,
		io: {
			namespaces: {
				"/": {
					authorization: true,
					events: {
						// `this` is the socket here (moleculer-io binds handlers to it).
						subscribe(this: Socket, ...args: unknown[]) {
							const { payload, ack } = requestArgs(args);
							serviceOf(this).inOrder(this, () => serviceOf(this).onSubscribe(this, payload, ack));
						},
						unsubscribe(this: Socket, ...args: unknown[]) {
							const { payload, ack } = requestArgs(args);
							serviceOf(this).inOrder(this, () => serviceOf(this).onUnsubscribe(this, payload, ack));
						},
					},
				},
			},
		},
	},

	// moleculer-io's own actions would let the cluster (and its default `call` handler, any socket)
	// reach every action and broadcast to every socket: none of them is offered.
	actions: {
		call: false,
		broadcast: false,
		getClients: false,
	},

	methods: {
		/** moleculer-io's handshake hook: a bad credential refuses the connection (connect_error). */
		async socketAuthorize(this: RealtimeThis, socket: Socket): Promise<Principal> {
			let principal: Principal;
			let credential: string | null;
			try {
				credential = credentialOf(socket);
				if (!credential) throw fail.unauthorized("Credentials required: connect with auth: { token }");
				principal = await this.handshake(credential, socket.request);
				this.streamAdmit(principal);
			} catch (err) {
				// connect_error carries the API's error code in `data`, whatever went wrong.
				const error = clientError(err);
				throw Object.assign(new Error(error.message), { data: error });
			}
			// Registered with the hub once connected (created()): a client hanging up during the
			// handshake gets no "disconnect", and would have stayed in the hub for good.
			const enqueue = requestQueue((err) => this.logger.warn("socket.io request failed:", (err as Error).message));
			socket.data = { principal, credential, subscriber: socketSubscriber(socket, principal), enqueue } satisfies SocketData;
			return principal;
		},

		/** A handshake's credential (socket.io or WebSocket), counted against the client's address as on REST and gRPC. */
		handshake(this: RealtimeThis, credential: string, req: IncomingMessage): Promise<Principal> {
			const address = clientAddress(req, this.runtime.config.trustProxy);
			return resolveThrottled(this.runtime.state, address, () => this.resolveCredential(credential));
		},

		/** Queues a request behind the socket's earlier ones; once the socket is gone, what is left is dropped. */
		inOrder(this: RealtimeThis, socket: Socket, request: () => Promise<void>) {
			const { enqueue, subscriber } = socket.data as SocketData;
			const queued = enqueue(async () => (socket.connected ? request() : undefined));
			if (!queued && socket.connected) this.hub.tooSlow(subscriber, TOO_MANY_WAITING);
		},

		async onSubscribe(this: RealtimeThis, socket: Socket, payload: unknown, ack: unknown) {
			const { subscriber } = socket.data as SocketData;
			try {
				await this.charge(subscriber.principal);
				const request = parseSubscription(payload);
				const named = topicFields(request.topic);
				// Acknowledged once authorised: the replay (if any) follows, then live events. The
				// socket's next request is handled once the subscription is in place, not after its replay.
				await subscribeStep(
					(authorized) => this.streamSubscribe(subscriber, request.topic, request.sinceSeq, authorized),
					() => this.reply(socket, ack, { ok: true, ...named }),
					// The ack said ok: the client hears of the failure as of a revoked subscription.
					(err) => {
						if (!isClientError(err)) this.logger.warn("A socket.io subscription ended by its replay:", (err as Error).message);
						const error = clientError(err);
						socket.emit("unsubscribed", { ...named, code: error.code, reason: error.message });
					},
				);
			} catch (err) {
				this.reply(socket, ack, { ok: false, error: clientError(err) });
			}
		},

		async onUnsubscribe(this: RealtimeThis, socket: Socket, payload: unknown, ack: unknown) {
			const { subscriber } = socket.data as SocketData;
			try {
				await this.charge(subscriber.principal);
				const request = parseSubscription(payload);
				this.streamUnsubscribe(subscriber.id, request.topic);
				this.reply(socket, ack, { ok: true, ...topicFields(request.topic) });
			} catch (err) {
				this.reply(socket, ack, { ok: false, error: clientError(err) });
			}
		},

		/** Answers an ack. Acks queue like events: a client that emits but never reads is closed at the same cap. */
		reply(this: RealtimeThis, socket: Socket, ack: unknown, answer: Record<string, unknown>): void {
			if (typeof ack !== "function") return;
			(ack as Ack)(answer);
			if (socket.connected && overCap(socket)) this.hub.tooSlow((socket.data as SocketData).subscriber);
		},

		/** Socket frames count against the principal's rate limit, as REST requests do. */
		async charge(this: RealtimeThis, principal: Principal): Promise<void> {
			const bucket = await takePrincipalToken(this.runtime.state, this.logger, principal, "socket frames");
			if (bucket) refuseWhenEmpty(bucket);
		},

		/**
		 * Shutdown: no new connections; open ones are closed so the HTTP server can stop. socket.io
		 * connections lose their transport rather than being disconnected: a client told "io server
		 * disconnect" never reconnects, one that lost its transport reconnects (to another node) and
		 * resumes with since_seq.
		 */
		async drain(this: RealtimeThis): Promise<void> {
			this.ws.drain();
			this.io.engine.close();
		},
	},

	created(this: RealtimeThis) {
		// Attach to the api service's HTTP server: one port serves REST, socket.io and WebSocket.
		const api = this.broker.getLocalService("api") as unknown as { server?: HttpServer } | undefined;
		if (!api?.server) throw new Error("realtime needs the api service on the same node (SERVICES=api,realtime,...)");
		const withIo = this as unknown as { initSocketIO(server: HttpServer, options: object): void; settings: { io: { handlers: Record<string, Record<string, unknown>> } } };
		withIo.initSocketIO(api.server, {
			path: SOCKET_IO_PATH,
			serveClient: false,
			// Client frames are small (subscribe / unsubscribe).
			maxHttpBufferSize: 64 * 1024,
			// An engine.io session is opened before any credential is seen (that comes with the
			// namespace's CONNECT): one that has not joined within 10 s is dropped, not after the
			// default 45 s (a client opening sessions in a loop held 900 MB of them).
			connectTimeout: 10_000,
			// Leave other upgrades (the plain WebSocket endpoint) alone.
			destroyUpgrade: false,
		});
		this.io.engine.use(sessionCap(this.io.engine, this.runtime.config.liveConnectionsPerNode));
		// Every HTTP answer of the gateway names its request, socket.io's polling transport included.
		this.io.engine.on("headers", (headers: Record<string, string>, req: IncomingMessage) => {
			headers["X-Request-Id"] = requestIdFor(req.headers["x-request-id"]);
		});
		this.io.of("/").on("connection", (socket: Socket) => {
			const { subscriber, credential } = socket.data as SocketData;
			if (!this.streamConnect(subscriber, credential)) return;
			socket.once("disconnect", () => this.streamDisconnect(subscriber.id));
			// Any other event runs nothing; one with an ack is answered, or the client would wait out its timeout.
			socket.onAny((event: unknown, ...args: unknown[]) => {
				if (event === "subscribe" || event === "unsubscribe") return;
				const ack = args[args.length - 1];
				if (typeof ack !== "function") return;
				const unknown = new GatewayError("NOT_FOUND", `Unknown event '${String(event).slice(0, 64)}': a socket may emit subscribe and unsubscribe`);
				this.charge(subscriber.principal).then(
					() => this.reply(socket, ack, { ok: false, error: clientError(unknown) }),
					(err: unknown) => this.reply(socket, ack, { ok: false, error: clientError(err) }),
				);
			});
		});
		// moleculer-io's default namespace brings a `call` handler that reaches any action: drop it.
		for (const handlers of Object.values(withIo.settings.io.handlers)) delete handlers.call;
		this.ws = new WsEndpoint(api.server, {
			authenticate: (credential, req) => this.handshake(credential, req),
			admit: (principal) => this.streamAdmit(principal),
			connect: (subscriber, credential) => this.streamConnect(subscriber, credential),
			disconnect: (id) => this.streamDisconnect(id),
			subscribe: (subscriber, topic, sinceSeq, authorized) => this.streamSubscribe(subscriber, topic, sinceSeq, authorized),
			unsubscribe: (id, topic) => this.streamUnsubscribe(id, topic),
			charge: (principal) => this.charge(principal),
			tooSlow: (subscriber, reason) => this.hub.tooSlow(subscriber, reason),
			logWarning: (message) => this.logger.warn(message),
		}, SOCKET_IO_PATH);
	},

	stopped(this: RealtimeThis) {
		this.ws.close();
	},
};

export default RealtimeService;
