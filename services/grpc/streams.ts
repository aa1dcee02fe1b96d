/**
 * Server streams. Each StreamMessages / StreamChatMessages call is one subscriber of the
 * event-stream hub (mixins/event-stream): authenticated like any RPC, subscribed to one topic
 * (response headers go out once the ACL allowed it, then the log after since_seq is replayed), fed MessageEvents until the client cancels, its
 * deadline passes, its grant or credential is withdrawn (PERMISSION_DENIED / UNAUTHENTICATED), it
 * reads too slowly (RESOURCE_EXHAUSTED) or the server shuts down (UNAVAILABLE).
 */
import { randomUUID } from "node:crypto";
import { constants as http2, type ServerHttp2Stream } from "node:http2";
import { Metadata, type handleServerStreamingCall, type ServerWritableStream } from "@grpc/grpc-js";
import { GatewayError } from "../../lib/errors";
import { waitUntil, type CloseReason, type Subscriber, type Topic } from "../../mixins/event-stream/subscription-hub";
import type { Principal } from "../auth/principal";
import type { GatewayEvent } from "../broker/event-log";
import { deadlineOf, logFailure, malformedRequest, SHUTTING_DOWN, type GrpcBridge } from "./calls";
import { approximateSize, eventToProto, type MessageEventProto, type StreamOpening } from "./codec";
import { closeError, deadlineExceeded, grpcErrorOf, toGrpcError, type GrpcError } from "./errors";
import { isMalformed, type Malformed } from "./proto";

export interface StreamLimits {
	/** Events written but not yet taken by the transport before the client counts as too slow. */
	maxEvents: number;
	/** The same, in (approximate) bytes. */
	maxBytes: number;
}

export const DEFAULT_STREAM_LIMITS: StreamLimits = { maxEvents: 1_000, maxBytes: 4 * 1024 * 1024 };

/** How long an ended stream's status may wait behind messages the client has not read yet. */
export const END_GRACE_MS = 5_000;

/**
 * grpc-js sends a stream's status only after every message written before it, so a client that
 * stopped reading (the one a buffer cap closes) would keep them, and the call, for as long as its
 * connection lives. grpc-js has no public way to drop them: the call's HTTP/2 stream is found under
 * its intercepting calls and reset with ENHANCE_YOUR_CALM, which grpc-js clients read as
 * RESOURCE_EXHAUSTED. Null for anything else (a test's fake call).
 */
function http2StreamOf(call: unknown): ServerHttp2Stream | null {
	let node = (call as { call?: unknown }).call;
	for (let depth = 0; node && depth < 8; depth++) {
		const stream = (node as { stream?: { close?: unknown } }).stream;
		if (stream && typeof stream.close === "function") return stream as ServerHttp2Stream;
		node = (node as { nextCall?: unknown }).nextCall;
	}
	return null;
}

/** The part of a grpc-js server stream a subscriber uses (a fake in unit tests). */
export interface EventCall {
	readonly cancelled: boolean;
	sendMetadata(metadata: Metadata): void;
	write(message: MessageEventProto, callback: (error?: Error | null) => void): boolean;
	end(): void;
	emit(event: "error", error: GrpcError): boolean;
	on(event: "cancelled" | "close" | "error" | "finish", listener: () => void): unknown;
}

export interface SubscriberOptions {
	id?: string;
	limits?: StreamLimits;
	/** Epoch ms; Infinity for none. */
	deadline?: number;
	/** END_GRACE_MS unless a test says otherwise. */
	endGraceMs?: number;
	/** Called once, however the stream ended. */
	onEnd(subscriber: GrpcStreamSubscriber): void;
}

export class GrpcStreamSubscriber implements Subscriber {
	readonly id: string;
	principal: Principal;
	private queuedEvents = 0;
	private queuedBytes = 0;
	private done = false;
	private readonly deadlineTimer: NodeJS.Timeout | undefined;
	private readonly limits: StreamLimits;

	constructor(
		private readonly call: EventCall,
		principal: Principal,
		private readonly options: SubscriberOptions,
	) {
		this.id = options.id ?? `grpc-${randomUUID()}`;
		this.principal = principal;
		this.limits = options.limits ?? DEFAULT_STREAM_LIMITS;
		const gone = () => this.settle();
		for (const event of ["cancelled", "close", "error", "finish"] as const) call.on(event, gone);
		const deadline = options.deadline ?? Infinity;
		if (Number.isFinite(deadline)) {
			this.deadlineTimer = setTimeout(() => this.end(deadlineExceeded()), Math.max(0, deadline - Date.now()));
		}
	}

	get ended(): boolean {
		return this.done;
	}

	/** Sends the response headers: the subscription is authorised (replay and live events follow). */
	confirm(): void {
		if (!this.done && !this.call.cancelled) this.call.sendMetadata(new Metadata());
	}

	/** Writes one event; false (the hub closes the stream) when the client is over its buffer cap. */
	send(event: GatewayEvent): boolean {
		if (this.done) return false;
		if (this.queuedEvents >= this.limits.maxEvents || this.queuedBytes >= this.limits.maxBytes) return false;
		const message = eventToProto(event);
		const size = approximateSize(message);
		this.queuedEvents += 1;
		this.queuedBytes += size;
		// The callback runs once the transport has taken the message (HTTP/2 flow control included).
		this.call.write(message, () => {
			this.queuedEvents -= 1;
			this.queuedBytes -= size;
		});
		return true;
	}

	/** Resolves once most of what was written has been taken by the transport (replay pacing). */
	drained(): Promise<void> {
		return waitUntil(() => this.done || (this.queuedEvents < this.limits.maxEvents / 4 && this.queuedBytes < this.limits.maxBytes / 4));
	}

	revoked(_topic: Topic, reason: CloseReason): void {
		this.end(grpcErrorOf("FORBIDDEN", reason.message));
	}

	close(reason: CloseReason): void {
		this.end(closeError(reason));
	}

	/** Ends the stream with the status for `err` (a refused subscription, a failed replay). */
	fail(err: unknown): void {
		this.end(toGrpcError(err));
	}

	/**
	 * Ends the call with `error` (after the events already written), or OK without one. Events the
	 * client has not taken within END_GRACE_MS are dropped with the stream (see http2StreamOf).
	 */
	end(error?: GrpcError): void {
		if (this.done) return;
		this.settle();
		if (this.call.cancelled) return;
		if (error) this.call.emit("error", error);
		else this.call.end();
		if (this.queuedEvents > 0) {
			const stream = http2StreamOf(this.call);
			const reset = setTimeout(() => {
				if (stream && !stream.closed && this.queuedEvents > 0) stream.close(http2.NGHTTP2_ENHANCE_YOUR_CALM);
			}, this.options.endGraceMs ?? END_GRACE_MS);
			reset.unref();
			stream?.once("close", () => clearTimeout(reset));
		}
	}

	/** The stream is over, whoever ended it: stop the deadline and tell the owner, once. */
	private settle(): void {
		if (this.done) return;
		this.done = true;
		clearTimeout(this.deadlineTimer);
		this.options.onEnd(this);
	}
}

/** What a stream needs from the service besides the unary bridge. */
export interface StreamBridge extends GrpcBridge {
	limits: StreamLimits;
	/** Registers the stream with the hub (streamConnect) and the server (for drain). */
	streamOpened(subscriber: GrpcStreamSubscriber, credential: string): void;
	/** Forgets it (streamDisconnect). */
	streamClosed(subscriber: GrpcStreamSubscriber): void;
	/** The mixin's streamSubscribe: `authorized` runs once the ACL said yes, before the replay. */
	streamSubscribe(subscriber: Subscriber, topic: Topic, sinceSeq?: number, authorized?: () => void): Promise<void>;
}

export function streamHandler<Req>(bridge: StreamBridge, open: (request: Req) => StreamOpening): handleServerStreamingCall<Req | Malformed, MessageEventProto> {
	const serve = async (call: ServerWritableStream<Req | Malformed, MessageEventProto>): Promise<void> => {
		let subscriber: GrpcStreamSubscriber | undefined;
		try {
			if (bridge.isDraining()) throw new GatewayError("UNAVAILABLE", SHUTTING_DOWN);
			const request = call.request;
			if (isMalformed(request)) throw malformedRequest();
			// Credentials first, as unary calls: a caller without them learns nothing about its request.
			const caller = await bridge.authenticate(call.metadata, call.getPeer());
			if (call.cancelled) return;
			const { topic, sinceSeq } = open(request);
			subscriber = new GrpcStreamSubscriber(call, caller.principal, {
				limits: bridge.limits,
				deadline: deadlineOf(call),
				onEnd: (s) => bridge.streamClosed(s),
			});
			bridge.streamOpened(subscriber, caller.credential);
			if (subscriber.ended) return;
			const opened = subscriber;
			await bridge.streamSubscribe(opened, topic, sinceSeq, () => opened.confirm());
		} catch (err) {
			if (subscriber?.ended || call.cancelled) return;
			logFailure(bridge.logger, call.getPath(), err);
			if (subscriber) subscriber.fail(err);
			else call.emit("error", toGrpcError(err));
		}
	};
	return (call) => void serve(call);
}
