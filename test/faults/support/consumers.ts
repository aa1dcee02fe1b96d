/**
 * Consumers that behave as API.md tells a client to: a socket.io subscriber and a gRPC stream that,
 * whenever their connection drops, come back and ask for everything after the last seq they saw
 * (since_seq). Each records every event it got, so the suite can compare what arrived with the
 * event log: missing seqs, duplicates, events out of order, and how often it had to come back.
 */
import { join } from "node:path";
import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";
import { io, type Socket } from "socket.io-client";

const EVENT_NAMES = ["new_message", "edited_message", "outgoing_message", "update"];
const RETRY_MS = 300;

/** What one consumer saw. */
export class EventTally {
	/** seq -> how many times it arrived. */
	readonly counts = new Map<number, number>();
	outOfOrder = 0;
	/** Successful (re)subscriptions: the first one, then one per comeback. */
	subscriptions = 0;
	/** Refused or failed subscribe attempts (while a store or node was away). */
	refusals = 0;
	/** The highest seq received: what a comeback asks to be replayed after. */
	last: number;

	constructor(
		readonly name: string,
		sinceSeq: number,
	) {
		this.last = sinceSeq;
	}

	record(seq: number): void {
		const count = this.counts.get(seq) ?? 0;
		this.counts.set(seq, count + 1);
		if (count > 0) return;
		if (seq < this.last) this.outOfOrder += 1;
		this.last = Math.max(this.last, seq);
	}
}

/** A socket.io client subscribed to one bot, resubscribing with since_seq after every reconnect. */
export class SocketConsumer {
	readonly tally: EventTally;
	private readonly socket: Socket;
	private closed = false;

	constructor(
		name: string,
		baseUrl: string,
		token: string,
		private readonly botId: number,
		sinceSeq: number,
	) {
		this.tally = new EventTally(name, sinceSeq);
		this.socket = io(baseUrl, {
			path: "/socket.io",
			transports: ["websocket"],
			forceNew: true,
			auth: { token },
			reconnection: true,
			reconnectionDelay: RETRY_MS,
			reconnectionDelayMax: 1_000,
			randomizationFactor: 0,
			timeout: 5_000,
		});
		for (const name of EVENT_NAMES) this.socket.on(name, (event: { seq: number }) => this.tally.record(Number(event.seq)));
		this.socket.on("connect", () => void this.subscribe());
		// A refusal by the server's middleware (auth unreachable) or a server-side disconnect ends
		// socket.io's own reconnection: start it again.
		const again = () => {
			if (!this.closed && !this.socket.active) setTimeout(() => this.closed || this.socket.connect(), RETRY_MS).unref();
		};
		this.socket.on("connect_error", again);
		this.socket.on("disconnect", again);
	}

	get connected(): boolean {
		return this.socket.connected;
	}

	private async subscribe(): Promise<void> {
		if (this.closed || !this.socket.connected) return;
		let answer: { ok?: boolean };
		try {
			answer = (await this.socket.timeout(5_000).emitWithAck("subscribe", { bot_id: this.botId, since_seq: this.tally.last })) as { ok?: boolean };
		} catch {
			answer = { ok: false };
		}
		if (answer.ok) {
			this.tally.subscriptions += 1;
			return;
		}
		this.tally.refusals += 1;
		setTimeout(() => void this.subscribe(), RETRY_MS).unref();
	}

	close(): void {
		this.closed = true;
		this.socket.close();
	}
}

type StreamCall = grpc.ClientReadableStream<{ seq: number }>;

/** A StreamChatMessages call, opened again with since_seq whenever it ends or fails. */
export class GrpcChatConsumer {
	readonly tally: EventTally;
	private readonly client: grpc.Client & { StreamChatMessages(request: object, metadata: grpc.Metadata): StreamCall };
	private call: StreamCall | undefined;
	private closed = false;

	constructor(
		name: string,
		address: string,
		private readonly token: string,
		private readonly chatId: number,
		sinceSeq: number,
	) {
		this.tally = new EventTally(name, sinceSeq);
		const definition = protoLoader.loadSync(join(__dirname, "..", "..", "..", "proto", "gateway.proto"), { keepCase: true, longs: Number, defaults: true, oneofs: true });
		const proto = grpc.loadPackageDefinition(definition) as unknown as { gateway: { v1: { MessageService: grpc.ServiceClientConstructor } } };
		this.client = new proto.gateway.v1.MessageService(address, grpc.credentials.createInsecure()) as unknown as typeof this.client;
		this.open();
	}

	private open(): void {
		if (this.closed) return;
		const metadata = new grpc.Metadata();
		metadata.set("authorization", `Bearer ${this.token}`);
		const call = this.client.StreamChatMessages({ chat_id: this.chatId, since_seq: this.tally.last }, metadata);
		this.call = call;
		let ended = false;
		const reopen = (refused: boolean) => {
			if (ended) return;
			ended = true;
			if (refused) this.tally.refusals += 1;
			setTimeout(() => this.open(), RETRY_MS).unref();
		};
		// Response headers come once the subscription is authorised; the replay follows.
		call.once("metadata", () => (this.tally.subscriptions += 1));
		call.on("data", (event: { seq: number }) => this.tally.record(Number(event.seq)));
		call.on("error", () => reopen(true));
		call.on("end", () => reopen(false));
	}

	close(): void {
		this.closed = true;
		this.call?.cancel();
		this.client.close();
	}
}
