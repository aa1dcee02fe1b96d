import { EventEmitter } from "node:events";
import { credentials, loadPackageDefinition, Metadata, Server, ServerCredentials, status, type ServerWritableStream, type ServiceClientConstructor } from "@grpc/grpc-js";
import { fail } from "../../lib/errors";
import type { Principal } from "../../services/auth/principal";
import type { GatewayEvent } from "../../services/broker/event-log";
import type { Caller } from "../../services/grpc/auth";
import { streamChatOpening, type MessageEventProto } from "../../services/grpc/codec";
import type { GrpcError } from "../../services/grpc/errors";
import { loadGatewayProto, MALFORMED } from "../../services/grpc/proto";
import { GrpcStreamSubscriber, streamHandler, type EventCall, type StreamBridge } from "../../services/grpc/streams";

const principal: Principal = { type: "user", id: 1, user_id: 1, username: "u", roles: ["viewer"], permissions: ["messages:read"], rate_limit: 10, is_admin: false };

function event(seq: number, text = `m${seq}`): GatewayEvent {
	return { type: "new_message", seq, bot_id: 1, chat_id: 2, created_at: "2025-01-01T00:00:00.000Z", message: { id: seq, seq, chat_id: 2, bot_id: 1, direction: "incoming", type: "text", text } };
}

/** A server stream as grpc-js gives it, recording what the subscriber does to it. */
class FakeCall extends EventEmitter implements EventCall {
	cancelled = false;
	readonly written: MessageEventProto[] = [];
	readonly statuses: GrpcError[] = [];
	headersSent = 0;
	endedOk = false;
	private readonly pending: Array<() => void> = [];

	constructor(
		readonly request: unknown = {},
		readonly metadata = new Metadata(),
		private readonly deadline: number = Infinity,
	) {
		super();
		this.on("error", (err: GrpcError) => this.statuses.push(err));
	}

	sendMetadata(): void {
		this.headersSent += 1;
	}

	write(message: MessageEventProto, callback: () => void): boolean {
		this.written.push(message);
		this.pending.push(callback);
		return true;
	}

	end(): void {
		this.endedOk = true;
	}

	/** The transport takes `n` queued messages. */
	flush(n = Infinity): void {
		for (const callback of this.pending.splice(0, n)) callback();
	}

	cancel(): void {
		this.cancelled = true;
		this.emit("cancelled", "cancelled");
	}

	getPeer = () => "10.0.0.1:5000";
	getDeadline = () => this.deadline;
	getPath = () => "/gateway.v1.MessageService/StreamChatMessages";
}

function subscriber(call: FakeCall, limits = { maxEvents: 3, maxBytes: 1_000_000 }, deadline?: number) {
	const onEnd = jest.fn();
	const s = new GrpcStreamSubscriber(call, principal, { id: "s1", limits, onEnd, ...(deadline !== undefined ? { deadline } : {}) });
	return { s, onEnd };
}

describe("GrpcStreamSubscriber", () => {
	it("writes each event as a MessageEvent", () => {
		const call = new FakeCall();
		const { s } = subscriber(call);
		expect(s.send(event(5, "hello"))).toBe(true);
		expect(call.written).toEqual([expect.objectContaining({ type: "new_message", seq: 5, chat_id: 2, message: expect.objectContaining({ text: "hello", seq: 5 }) })]);
	});

	it("refuses (so the hub closes it) once maxEvents are queued for the client, and takes more as they drain", () => {
		const call = new FakeCall();
		const { s } = subscriber(call);
		expect([1, 2, 3].map((seq) => s.send(event(seq)))).toEqual([true, true, true]);
		expect(s.send(event(4))).toBe(false);
		call.flush(1);
		expect(s.send(event(4))).toBe(true);
		expect(call.written.map((e) => e.seq)).toEqual([1, 2, 3, 4]);
	});

	it("refuses once about maxBytes are queued", () => {
		const call = new FakeCall();
		const { s } = subscriber(call, { maxEvents: 1_000, maxBytes: 10_000 });
		expect(s.send(event(1, "x".repeat(6_000)))).toBe(true);
		expect(s.send(event(2, "x".repeat(6_000)))).toBe(true);
		expect(s.send(event(3, "small"))).toBe(false);
		call.flush();
		expect(s.send(event(3, "small"))).toBe(true);
	});

	it.each([
		["RATE_LIMITED", status.RESOURCE_EXHAUSTED],
		["UNAUTHORIZED", status.UNAUTHENTICATED],
		["FORBIDDEN", status.PERMISSION_DENIED],
		["UNAVAILABLE", status.UNAVAILABLE],
	] as const)("close(%s) ends the call with %s and x-error-code, once", (code, grpcCode) => {
		const call = new FakeCall();
		const { s, onEnd } = subscriber(call);
		s.close({ code, message: "because" });
		s.close({ code, message: "again" });
		expect(call.statuses).toHaveLength(1);
		expect(call.statuses[0]).toMatchObject({ code: grpcCode, details: "because" });
		expect(call.statuses[0]!.metadata.get("x-error-code")).toEqual([code]);
		expect(onEnd).toHaveBeenCalledTimes(1);
		expect(s.send(event(1))).toBe(false);
	});

	it("revoked ends the call with PERMISSION_DENIED", () => {
		const call = new FakeCall();
		const { s, onEnd } = subscriber(call);
		s.revoked({ kind: "chat", id: 2 }, { code: "FORBIDDEN", message: "can_read on chat 2 was revoked" });
		expect(call.statuses[0]).toMatchObject({ code: status.PERMISSION_DENIED, details: "can_read on chat 2 was revoked" });
		expect(onEnd).toHaveBeenCalledWith(s);
	});

	it("a client that cancels is forgotten once, and nothing is written to it afterwards", () => {
		const call = new FakeCall();
		const { s, onEnd } = subscriber(call);
		call.cancel();
		call.emit("close");
		expect(onEnd).toHaveBeenCalledTimes(1);
		expect(s.ended).toBe(true);
		expect(s.send(event(1))).toBe(false);
		s.close({ code: "UNAVAILABLE", message: "server shutting down" });
		expect(call.statuses).toEqual([]);
		expect(call.written).toEqual([]);
	});

	it("ends with DEADLINE_EXCEEDED when the call's deadline passes", async () => {
		const call = new FakeCall();
		const { onEnd } = subscriber(call, undefined, Date.now() + 20);
		await new Promise((resolve) => setTimeout(resolve, 60));
		expect(call.statuses).toEqual([expect.objectContaining({ code: status.DEADLINE_EXCEEDED })]);
		expect(onEnd).toHaveBeenCalledTimes(1);
	});

	it("end() without an error ends the call OK", () => {
		const call = new FakeCall();
		const { s } = subscriber(call);
		s.end();
		expect([call.endedOk, call.statuses]).toEqual([true, []]);
	});
});

describe("streamHandler", () => {
	function bridge(overrides: Partial<StreamBridge> = {}) {
		const calls: string[] = [];
		const b: StreamBridge = {
			logger: { warn: jest.fn(), error: jest.fn() },
			limits: { maxEvents: 10, maxBytes: 100_000 },
			isDraining: () => false,
			authenticate: async (): Promise<Caller> => ({ principal, credential: "cred", clientIp: "10.0.0.1" }),
			callAction: async () => {
				throw new Error("streams call no action");
			},
			streamOpened: jest.fn((s, credential: string) => void calls.push(`opened ${s.id} ${credential}`)),
			streamClosed: jest.fn((s) => void calls.push(`closed ${s.id}`)),
			streamSubscribe: jest.fn(async () => undefined),
			...overrides,
		};
		return { b, calls };
	}

	const serve = async (b: StreamBridge, call: FakeCall) => {
		streamHandler(b, streamChatOpening)(call as unknown as ServerWritableStream<never, MessageEventProto>);
		await new Promise((resolve) => setImmediate(resolve));
	};

	it("authenticates, registers the stream, subscribes it to the request's topic with since_seq, and sends headers once authorised", async () => {
		const { b } = bridge({ streamSubscribe: jest.fn(async (_s, _topic, _since, authorized?: () => void) => authorized?.()) });
		const call = new FakeCall({ chat_id: 7, since_seq: 0 });
		await serve(b, call);
		expect(b.streamOpened).toHaveBeenCalledWith(expect.any(GrpcStreamSubscriber), "cred");
		expect(b.streamSubscribe).toHaveBeenCalledWith(expect.any(GrpcStreamSubscriber), { kind: "chat", id: 7 }, 0, expect.any(Function));
		expect(call.headersSent).toBe(1);
		call.cancel();
		expect(b.streamClosed).toHaveBeenCalledTimes(1);
	});

	it("a refused credential ends the call before anything is registered", async () => {
		const { b } = bridge({ authenticate: async () => Promise.reject(fail.unauthorized("Invalid token")) });
		const call = new FakeCall({ chat_id: 7 });
		await serve(b, call);
		expect(call.statuses).toEqual([expect.objectContaining({ code: status.UNAUTHENTICATED, details: "Invalid token" })]);
		expect(b.streamOpened).not.toHaveBeenCalled();
		expect(b.logger.error).not.toHaveBeenCalled();
	});

	it("a refused subscription ends the call with its status and forgets the stream", async () => {
		const { b, calls } = bridge({ streamSubscribe: async () => Promise.reject(fail.forbidden("Needs can_read on chat 7")) });
		const call = new FakeCall({ chat_id: 7 });
		await serve(b, call);
		expect(call.statuses).toEqual([expect.objectContaining({ code: status.PERMISSION_DENIED, details: "Needs can_read on chat 7" })]);
		expect(call.headersSent).toBe(0);
		expect(calls).toEqual([expect.stringMatching(/^opened grpc-.* cred$/), expect.stringMatching(/^closed grpc-/)]);
	});

	it("undecodable bytes and a draining server are refused without authenticating; a bad request after it, as unary calls are", async () => {
		const credentialChecked = jest.fn(bridge().b.authenticate);
		const invalid = new FakeCall({ chat_id: 0 });
		await serve(bridge({ authenticate: credentialChecked }).b, invalid);
		expect(invalid.statuses.map((s) => s.code)).toEqual([status.INVALID_ARGUMENT]);
		expect(credentialChecked).toHaveBeenCalledTimes(1);

		const authenticate = jest.fn();
		for (const [b, request, code] of [
			[bridge({ authenticate }).b, { [MALFORMED]: true }, status.INVALID_ARGUMENT],
			[bridge({ authenticate, isDraining: () => true }).b, { chat_id: 7 }, status.UNAVAILABLE],
		] as const) {
			const call = new FakeCall(request);
			await serve(b, call);
			expect(call.statuses.map((s) => s.code)).toEqual([code]);
		}
		expect(authenticate).not.toHaveBeenCalled();
	});

	it("a client gone while it was being authenticated is never registered", async () => {
		const call = new FakeCall({ chat_id: 7 });
		const { b } = bridge({
			authenticate: async () => {
				call.cancel();
				return { principal, credential: "cred", clientIp: "10.0.0.1" };
			},
		});
		await serve(b, call);
		expect(b.streamOpened).not.toHaveBeenCalled();
		expect(call.statuses).toEqual([]);
	});

	it("a failed replay (the log is away) is UNAVAILABLE and logged", async () => {
		const { b } = bridge({ streamSubscribe: async () => Promise.reject(fail.unavailable("Database")) });
		const call = new FakeCall({ chat_id: 7, since_seq: 3 });
		await serve(b, call);
		expect(call.statuses.map((s) => s.code)).toEqual([status.UNAVAILABLE]);
		expect(b.logger.error).toHaveBeenCalledTimes(1);
	});
});

describe("a stream ended while its client has stopped reading (real grpc-js transport)", () => {
	it("is reset after the grace period: the server drops what was queued, the client gets RESOURCE_EXHAUSTED", async () => {
		const proto = loadGatewayProto();
		const { MessageService } = (loadPackageDefinition(proto.packageDefinition) as unknown as { gateway: { v1: { MessageService: ServiceClientConstructor } } }).gateway.v1;
		const servers: Server[] = [];
		const clients: Array<{ close(): void }> = [];
		const clientStatus: number[] = [];
		let serverCall: ServerWritableStream<unknown, MessageEventProto> | undefined;
		let subscriber: GrpcStreamSubscriber | undefined;
		const refused = new Promise<void>((resolve) => {
			const server = new Server();
			server.addService(proto.services.MessageService, {
				StreamMessages(call: ServerWritableStream<unknown, MessageEventProto>) {
					serverCall = call;
					subscriber = new GrpcStreamSubscriber(call, principal, { limits: { maxEvents: 50, maxBytes: 50_000_000 }, endGraceMs: 300, onEnd: () => undefined });
					call.sendMetadata(new Metadata());
					// What the hub does: write until the buffer cap refuses, then close the stream as too slow.
					const fill = (seq: number): void => {
						if (subscriber!.send(event(seq, "x".repeat(20_000)))) return void setImmediate(() => fill(seq + 1));
						subscriber!.close({ code: "RATE_LIMITED", message: "Too slow: closed" });
						resolve();
					};
					fill(1);
				},
			});
			servers.push(server);
			server.bindAsync("127.0.0.1:0", ServerCredentials.createInsecure(), (err, port) => {
				if (err) throw err;
				const client = new MessageService(`127.0.0.1:${port}`, credentials.createInsecure());
				clients.push(client);
				const stream = (client as unknown as { StreamMessages(request: object): NodeJS.ReadableStream }).StreamMessages({});
				stream.once("data", () => stream.pause());
				stream.on("error", (e: { code: number }) => clientStatus.push(e.code));
			});
		});
		try {
			await refused;
			// The status waits behind the queued events the paused client will not take...
			await new Promise((resolve) => setTimeout(resolve, 100));
			expect(clientStatus).toEqual([]);
			expect(serverCall!.cancelled).toBe(false);
			// ...until the grace period ends: then the HTTP/2 stream is reset and nothing stays queued.
			const deadline = Date.now() + 3_000;
			while (clientStatus.length === 0 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20));
			expect(clientStatus).toEqual([status.RESOURCE_EXHAUSTED]);
			expect(serverCall!.cancelled).toBe(true);
		} finally {
			for (const c of clients) c.close();
			for (const s of servers) s.forceShutdown();
		}
	});
});
