/**
 * grpc: the gRPC server on GRPC_PORT (proto/gateway.proto, package gateway.v1), bridging each RPC to
 * the same action REST uses (services/grpc/codec.ts has the routes) and server streams to the event
 * log through the event-stream mixin, with the standard health service and server reflection on the
 * same port. Plain TCP: TLS ends at the proxy or ingress in front (docs/grpc.md).
 */
import { Server, ServerCredentials, type ServerOptions } from "@grpc/grpc-js";
import type { ServingStatus } from "grpc-health-check";
import type { LoggerInstance, Service, ServiceSchema, ServiceSettingSchema } from "moleculer";
import { EventStreamMixin, type EventStreamLocalVars, type EventStreamMethods } from "../mixins/event-stream.mixin";
import { callBounds } from "./grpc/call-bounds";
import { authenticate, credentialsFirst, type AuthDeps } from "./grpc/auth";
import { SHUTTING_DOWN, unaryHandler } from "./grpc/calls";
import { GatewayHealth } from "./grpc/health";
import { ROUTES, streamChatOpening, streamMessagesOpening } from "./grpc/codec";
import { loadGatewayProto, PROTO_PACKAGE, SERVICE_NAMES, type GatewayProto } from "./grpc/proto";
import { addReflection } from "./grpc/reflection";
import { DEFAULT_STREAM_LIMITS, streamHandler, type GrpcStreamSubscriber, type StreamBridge } from "./grpc/streams";

const DRAIN_TIMEOUT_MS = 10_000;
const STOP_TIMEOUT_MS = 5_000;

const SERVER_OPTIONS: ServerOptions = {
	// API.md: request bodies are limited to 1 MB (larger messages get RESOURCE_EXHAUSTED from grpc-js).
	"grpc.max_receive_message_length": 1024 * 1024,
	// Find clients that vanished without closing their streams: a ping a minute, 20 s to answer.
	"grpc.keepalive_time_ms": 60_000,
	"grpc.keepalive_timeout_ms": 20_000,
	// Calls open at once on one connection: Node's default is 2^32 - 1, and a client without
	// credentials held 150,000 streams (880 MB) open on one. A principal's live streams are capped
	// at LIVE_CONNECTIONS_PER_PRINCIPAL (1,000) anyway.
	"grpc.max_concurrent_streams": 1_100,
};

/** The gateway's own RPCs (credentials needed), as against health and reflection (open). */
const isGatewayPath = (path: string) => path.startsWith(`/${PROTO_PACKAGE}.`);

/** The health service's names: the whole server ("") and each gateway service. */
const HEALTH_NAMES = ["", ...SERVICE_NAMES.map((name) => `${PROTO_PACKAGE}.${name}`)];

interface GrpcLocalVars {
	proto: GatewayProto;
	server?: Server;
	health?: GatewayHealth;
	/** The port actually bound (GRPC_PORT=0 picks a free one). */
	port?: number;
	draining: boolean;
	/** Open server streams, to end them on drain. */
	streams: Set<GrpcStreamSubscriber>;
}

interface GrpcMethods {
	bridge(): StreamBridge;
	authDeps(): AuthDeps & { logger: LoggerInstance };
	setHealth(status: ServingStatus): void;
	/** Stops accepting calls, ends live streams with UNAVAILABLE, lets unary calls finish (up to timeoutMs). */
	drain(timeoutMs?: number): Promise<void>;
}

type GrpcThis = Service<ServiceSettingSchema> & EventStreamLocalVars & EventStreamMethods & GrpcLocalVars & GrpcMethods;

function bindAddress(host: string, port: number): string {
	return host.includes(":") && !host.startsWith("[") ? `[${host}]:${port}` : `${host}:${port}`;
}

const GrpcService: ServiceSchema<ServiceSettingSchema, GrpcThis> = {
	name: "grpc",
	mixins: [EventStreamMixin as Partial<ServiceSchema>],

	methods: {
		bridge(this: GrpcThis): StreamBridge {
			const deps = this.authDeps();
			return {
				logger: this.logger,
				limits: DEFAULT_STREAM_LIMITS,
				isDraining: () => this.draining,
				authenticate: (metadata, peer) => authenticate(deps, metadata, peer),
				callAction: (action, params, options) => this.broker.call(action, params, options),
				streamSubscribe: (subscriber, topic, sinceSeq, authorized) => this.streamSubscribe(subscriber, topic, sinceSeq, authorized),
				streamOpened: (subscriber, credential) => {
					this.streams.add(subscriber);
					if (!this.streamConnect(subscriber, credential)) return;
					if (this.draining) subscriber.close({ code: "UNAVAILABLE", message: SHUTTING_DOWN });
				},
				streamClosed: (subscriber) => {
					this.streams.delete(subscriber);
					this.streamDisconnect(subscriber.id);
				},
			};
		},

		authDeps(this: GrpcThis): AuthDeps & { logger: LoggerInstance } {
			const { config, state } = this.runtime;
			return { resolveCredential: (credential: string) => this.resolveCredential(credential), state, trustedProxies: config.trustProxy, logger: this.logger };
		},

		setHealth(this: GrpcThis, status: ServingStatus) {
			this.health?.setStatus(status);
		},

		async drain(this: GrpcThis, timeoutMs = DRAIN_TIMEOUT_MS): Promise<void> {
			this.draining = true;
			this.setHealth("NOT_SERVING");
			for (const subscriber of [...this.streams]) subscriber.close({ code: "UNAVAILABLE", message: SHUTTING_DOWN });
			const server = this.server;
			if (!server) return;
			this.server = undefined;
			await new Promise<void>((resolve) => {
				const timer = setTimeout(() => {
					this.logger.warn(`gRPC calls still open after ${timeoutMs} ms: cutting them off`);
					server.forceShutdown();
					resolve();
				}, timeoutMs);
				timer.unref();
				server.tryShutdown(() => {
					clearTimeout(timer);
					resolve();
				});
			});
		},
	},

	created(this: GrpcThis) {
		this.proto = loadGatewayProto();
		this.streams = new Set();
		this.draining = false;
	},

	async started(this: GrpcThis) {
		const bridge = this.bridge();
		const { services } = this.proto;
		// The gateway's RPCs resolve the caller's credential before the request message is read; health and reflection stay open.
		const server = new Server({
			...SERVER_OPTIONS,
			// Neither a connection that never speaks HTTP/2 nor one without calls is ever closed by
			// grpc-js otherwise: both hold a socket and a session, and anyone may open them.
			"grpc.max_connection_idle_ms": this.runtime.config.idleConnectionTimeoutMs,
			interceptors: [callBounds({ withoutCredentials: (path) => !isGatewayPath(path) }), credentialsFirst(this.authDeps(), isGatewayPath)],
		});
		server.addService(services.MessageService, {
			StreamMessages: streamHandler(bridge, streamMessagesOpening),
			StreamChatMessages: streamHandler(bridge, streamChatOpening),
			SendMessage: unaryHandler(bridge, ROUTES.SendMessage),
			GetMessages: unaryHandler(bridge, ROUTES.GetMessages),
		});
		server.addService(services.ChatService, {
			ListChats: unaryHandler(bridge, ROUTES.ListChats),
			GetChat: unaryHandler(bridge, ROUTES.GetChat),
		});
		server.addService(services.BotService, {
			ListBots: unaryHandler(bridge, ROUTES.ListBots),
			GetBot: unaryHandler(bridge, ROUTES.GetBot),
			CreateBot: unaryHandler(bridge, ROUTES.CreateBot),
			DeleteBot: unaryHandler(bridge, ROUTES.DeleteBot),
		});
		this.health = new GatewayHealth(HEALTH_NAMES);
		this.health.addToServer(server);
		addReflection(server, this.proto.reflectionDefinition);

		const { host, grpcPort } = this.runtime.config;
		const address = bindAddress(host, grpcPort);
		this.port = await new Promise<number>((resolve, reject) => {
			server.bindAsync(address, ServerCredentials.createInsecure(), (err, port) => (err ? reject(err) : resolve(port)));
		}).catch((err: Error) => {
			server.forceShutdown();
			throw new Error(`gRPC server cannot listen on ${address}: ${err.message}`);
		});
		this.server = server;
		this.draining = false;
		this.setHealth("SERVING");
		this.logger.info(`gRPC server listening on ${bindAddress(host, this.port)} (${PROTO_PACKAGE}: ${SERVICE_NAMES.join(", ")}; health, reflection)`);
	},

	async stopped(this: GrpcThis) {
		await this.drain(STOP_TIMEOUT_MS);
	},
};

export default GrpcService;
