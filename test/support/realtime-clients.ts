/**
 * Clients for the realtime integration tests: a socket.io client that records every event it is
 * sent, a plain WebSocket client that records every frame, a raw engine.io connection that can stop
 * reading (a stalled client), a gRPC stream's outcome, and bounded waits for all of them. Every wait ends with an error that
 * says what it waited for.
 */
import type { Socket as NetSocket } from "node:net";
import type * as grpc from "@grpc/grpc-js";
import { Op } from "sequelize";
import { io, type Socket } from "socket.io-client";
import WebSocket from "ws";
import type { TelegramGateway } from "./telegram-gateway";

export type Payload = Record<string, unknown>;

export interface Received {
	event: string;
	payload: Payload;
}

/** Polls `probe` every 10 ms; rejects with `what` after `timeoutMs`. */
export async function waitUntil(probe: () => boolean | Promise<boolean>, timeoutMs: number, what: string): Promise<number> {
	const started = Date.now();
	while (!(await probe())) {
		if (Date.now() - started > timeoutMs) throw new Error(`not within ${timeoutMs} ms: ${what}`);
		await new Promise((resolve) => setTimeout(resolve, 10));
	}
	return Date.now() - started;
}

export const pause = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

export class IoClient {
	readonly received: Received[] = [];
	disconnectReason: string | null = null;

	constructor(readonly socket: Socket) {
		socket.onAny((event: string, payload: Payload) => this.received.push({ event, payload }));
		socket.on("disconnect", (reason) => (this.disconnectReason = reason));
	}

	get connected(): boolean {
		return this.socket.connected;
	}

	/** Event payloads (of one name, or every gateway event), in arrival order. */
	events(name?: string): Payload[] {
		return this.received.filter((r) => (name ? r.event === name : typeof r.payload?.seq === "number")).map((r) => r.payload);
	}

	/** The seqs of the gateway events received for one chat (or all). */
	seqs(chatId?: number): number[] {
		return this.events()
			.filter((e) => chatId === undefined || e.chat_id === chatId)
			.map((e) => e.seq as number);
	}

	async waitFor(predicate: (r: Received) => boolean, timeoutMs = 5_000, what = "an event"): Promise<Received> {
		await waitUntil(() => this.received.some(predicate), timeoutMs, what);
		return this.received.find(predicate)!;
	}

	waitForSeqs(chatId: number | undefined, count: number, timeoutMs = 10_000): Promise<number> {
		return waitUntil(() => this.seqs(chatId).length >= count, timeoutMs, `${count} events of chat ${chatId} (have ${this.seqs(chatId).length})`);
	}

	waitForDisconnect(timeoutMs = 5_000): Promise<number> {
		return waitUntil(() => this.disconnectReason !== null, timeoutMs, "the server to disconnect the socket");
	}

	/** emit with an ack; rejects when no ack comes within `timeoutMs`. */
	ask(event: string, ...args: unknown[]): Promise<Payload> {
		return this.socket.timeout(5_000).emitWithAck(event, ...args) as Promise<Payload>;
	}

	subscribe(payload: unknown): Promise<Payload> {
		return this.ask("subscribe", payload);
	}

	unsubscribe(payload: unknown): Promise<Payload> {
		return this.ask("unsubscribe", payload);
	}

	close(): void {
		this.socket.close();
	}
}

/** `headers` go on the handshake's HTTP request (an x-forwarded-for, say). */
function ioSocket(baseUrl: string, auth?: Payload, headers?: Record<string, string>): Socket {
	return io(baseUrl, {
		path: "/socket.io",
		transports: ["websocket"],
		reconnection: false,
		forceNew: true,
		...(auth ? { auth } : {}),
		...(headers ? { extraHeaders: headers } : {}),
	});
}

/** A connected socket.io client; rejects with the connect_error otherwise. */
export function connectIo(baseUrl: string, auth: Payload, headers?: Record<string, string>): Promise<IoClient> {
	const socket = ioSocket(baseUrl, auth, headers);
	const client = new IoClient(socket);
	return new Promise((resolve, reject) => {
		const timer = setTimeout(() => reject(new Error("socket.io connection timed out")), 5_000);
		socket.once("connect", () => (clearTimeout(timer), resolve(client)));
		socket.once("connect_error", (err) => (clearTimeout(timer), socket.close(), reject(err)));
	});
}

/** The connect_error a refused connection gets (rejects if it connects or nothing happens). */
export function ioConnectError(baseUrl: string, auth?: Payload, headers?: Record<string, string>): Promise<Error & { data?: Payload }> {
	const socket = ioSocket(baseUrl, auth, headers);
	return new Promise((resolve, reject) => {
		const timer = setTimeout(() => (socket.close(), reject(new Error("no connect_error within 5 s"))), 5_000);
		socket.once("connect", () => (clearTimeout(timer), socket.close(), reject(new Error("the connection was accepted"))));
		socket.once("connect_error", (err) => (clearTimeout(timer), socket.close(), resolve(err as Error & { data?: Payload })));
	});
}

export const wsUrl = (baseUrl: string, path: string) => baseUrl.replace(/^http/, "ws") + path;

export class WsClient {
	readonly frames: Payload[] = [];
	/** Frames that were not JSON (there should be none). */
	readonly garbage: string[] = [];
	closed: { code: number; reason: string } | null = null;

	constructor(readonly ws: WebSocket) {
		ws.on("message", (data) => {
			try {
				this.frames.push(JSON.parse(data.toString()) as Payload);
			} catch {
				this.garbage.push(data.toString());
			}
		});
		ws.on("close", (code, reason) => (this.closed = { code, reason: reason.toString() }));
		ws.on("error", () => undefined);
	}

	get open(): boolean {
		return this.ws.readyState === WebSocket.OPEN;
	}

	events(): Payload[] {
		return this.frames.filter((f) => typeof f.seq === "number");
	}

	seqs(chatId?: number): number[] {
		return this.events()
			.filter((e) => chatId === undefined || e.chat_id === chatId)
			.map((e) => e.seq as number);
	}

	/** Sends a frame (objects as JSON) and waits for the first new frame that matches. */
	async request(frame: unknown, match: (f: Payload) => boolean, timeoutMs = 5_000, binary = false): Promise<Payload> {
		const from = this.frames.length;
		this.ws.send(typeof frame === "string" || Buffer.isBuffer(frame) ? frame : JSON.stringify(frame), { binary });
		await waitUntil(() => this.frames.slice(from).some(match), timeoutMs, `a frame answering ${String(frame).slice(0, 80)}`);
		return this.frames.slice(from).find(match)!;
	}

	/** A ping answered by a pong: the connection is open and serving. */
	async ping(): Promise<void> {
		await this.request({ action: "ping" }, (f) => f.action === "pong");
	}

	waitForSeqs(chatId: number | undefined, count: number, timeoutMs = 10_000): Promise<number> {
		return waitUntil(() => this.seqs(chatId).length >= count, timeoutMs, `${count} frames of chat ${chatId} (have ${this.seqs(chatId).length})`);
	}

	waitForClose(timeoutMs = 5_000): Promise<number> {
		return waitUntil(() => this.closed !== null, timeoutMs, "the server to close the WebSocket");
	}

	close(): void {
		this.ws.terminate();
	}
}

/** Opens /api/v1/ws (query in `path`, headers as given); rejects with the status of a refused upgrade. */
export function connectWs(baseUrl: string, query: string, headers: Record<string, string> = {}): Promise<WsClient> {
	const ws = new WebSocket(wsUrl(baseUrl, `/api/v1/ws${query}`), { headers });
	const client = new WsClient(ws);
	return new Promise((resolve, reject) => {
		const timer = setTimeout(() => (ws.terminate(), reject(new Error("WebSocket upgrade timed out"))), 5_000);
		ws.once("open", () => (clearTimeout(timer), resolve(client)));
		ws.once("unexpected-response", (_req, res) => {
			clearTimeout(timer);
			reject(Object.assign(new Error(`upgrade refused: ${res.statusCode}`), { statusCode: res.statusCode }));
		});
	});
}

/** The HTTP answer to a refused upgrade: status, parsed body and (lower-case) headers. */
/** The answer to a WebSocket upgrade of `url` that the server does not take (rejects if it is taken). */
export function upgradeRefusal(
	url: string,
	headers: Record<string, string> = {},
): Promise<{ status: number; body: Payload; headers: Record<string, string | string[] | undefined> }> {
	const ws = new WebSocket(url, { headers });
	ws.on("error", () => undefined);
	return new Promise((resolve, reject) => {
		const timer = setTimeout(() => (ws.terminate(), reject(new Error("no answer to the upgrade within 5 s"))), 5_000);
		ws.once("open", () => (clearTimeout(timer), ws.terminate(), reject(new Error("the upgrade was accepted"))));
		ws.once("unexpected-response", (_req, res) => {
			let text = "";
			res.on("data", (chunk: Buffer) => (text += chunk.toString()));
			res.on("end", () => {
				clearTimeout(timer);
				let body: Payload = {};
				try {
					body = JSON.parse(text) as Payload;
				} catch {
					// not JSON: leave it empty
				}
				resolve({ status: res.statusCode ?? 0, body, headers: res.headers });
			});
		});
	});
}

/** The answer to an upgrade of /api/v1/ws that the server does not take. */
export const wsRefusal = (baseUrl: string, query: string, headers: Record<string, string> = {}) => upgradeRefusal(wsUrl(baseUrl, `/api/v1/ws${query}`), headers);

/**
 * A gRPC stream of everything (MessageService.StreamMessages) with these metadata, cancelled by
 * whoever takes it from `opened`: resolves "open" once the server sent its headers, or with the
 * status it ended with.
 */
export function grpcStreamOutcome(
	client: { StreamMessages(request: object, metadata: grpc.Metadata): grpc.ClientReadableStream<unknown> },
	metadata: grpc.Metadata,
	opened: Array<{ close(): void }>,
): Promise<"open" | grpc.StatusObject> {
	const call = client.StreamMessages({}, metadata);
	call.on("error", () => undefined);
	opened.push({ close: () => call.cancel() });
	return new Promise((resolve) => {
		call.on("metadata", () => resolve("open"));
		call.on("status", (status: grpc.StatusObject) => resolve(status));
	});
}

/**
 * A socket.io client spoken by hand over engine.io's WebSocket transport: it connects with `token`,
 * subscribes with `subscription` (waiting for the ack), then can stop reading from its TCP socket.
 */
export async function rawSocketIo(baseUrl: string, token: string, subscription: Payload) {
	const ws = new WebSocket(wsUrl(baseUrl, "/socket.io/?EIO=4&transport=websocket"));
	const packets: string[] = [];
	ws.on("error", () => undefined);
	ws.on("message", (data) => {
		const text = data.toString();
		packets.push(text);
		if (text === "2") ws.send("3"); // engine.io ping -> pong (while it still reads)
	});
	const expectPacket = (prefix: string) => waitUntil(() => packets.some((p) => p.startsWith(prefix)), 5_000, `engine.io packet ${prefix}`);
	await expectPacket("0{");
	ws.send(`40${JSON.stringify({ token })}`);
	await expectPacket("40{");
	ws.send(`421${JSON.stringify(["subscribe", subscription])}`);
	await expectPacket("431[");
	const ack = (JSON.parse(packets.find((p) => p.startsWith("431["))!.slice(3)) as Payload[])[0]!;
	return {
		ack,
		packets,
		/** Stops reading: the server's writes pile up in the kernel, then in its own buffers. */
		stall: () => (ws as unknown as { _socket: NetSocket })._socket.pause(),
		close: () => ws.terminate(),
	};
}

/** The seqs the event log holds for one chat after `afterSeq`, in order. */
export async function chatSeqsInLog(t: TelegramGateway, chatId: number, afterSeq = 0): Promise<number[]> {
	const rows = await t.gw.runtime.db.models.EventRecord.findAll({
		where: { chat_id: chatId, seq: { [Op.gt]: afterSeq } },
		attributes: ["seq"],
		order: [["seq", "ASC"]],
		raw: true,
	});
	return rows.map((row) => Number(row.seq));
}

/** The double's user writes `count` messages into a known chat; resolves once the gateway stored them all. */
export async function userFloods(
	t: TelegramGateway,
	token: string,
	chat: { id: number; telegramId: number },
	count: number,
	text: (i: number) => string = (i) => `message ${i}`,
): Promise<void> {
	const ids = new Set<number>();
	for (let i = 0; i < count; i += 1) ids.add(t.telegram.userSends(token, { chat_id: chat.telegramId, text: text(i) }).message!.message_id);
	const stored = () =>
		t.events.filter((e) => e.type === "new_message" && e.chat_id === chat.id && ids.has((e.message as { telegram_message_id: number }).telegram_message_id)).length;
	await waitUntil(() => stored() >= count, 60_000, `${count} messages stored (have ${stored()})`);
}
