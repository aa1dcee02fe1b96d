/**
 * socket.io encodes a packet on every emit: an event pushed to 10,000 sockets was walked for
 * binary attachments and JSON-encoded 10,000 times. Here each event's packet is encoded once, by
 * the socket's own encoder (the server's parser, shared by all its sockets), and written to every
 * socket pre-encoded, as socket.io's own room broadcasts do (Client._packet with preEncoded).
 * socket.emit does two things besides: it feeds onAnyOutgoing listeners and connection state
 * recovery, and the gateway uses neither.
 */
import type { Socket } from "socket.io";
import type { GatewayEvent } from "../broker/event-log";

/** socket.io-parser's PacketType.EVENT. */
const EVENT_PACKET = 2;

interface SocketClient {
	encoder: { encode(packet: { type: number; data: unknown[]; nsp: string }): unknown[] };
	_packet(packets: unknown[], options: { preEncoded: boolean; compress: boolean }): void;
}

const encoded = new WeakMap<GatewayEvent, { nsp: string; packets: unknown[] }>();

/** What `socket.emit(event.type, event)` sends, encoded once per event. */
export function emitEvent(socket: Socket, event: GatewayEvent): void {
	const client = socket.client as unknown as SocketClient;
	const nsp = socket.nsp.name;
	let entry = encoded.get(event);
	if (entry === undefined || entry.nsp !== nsp) {
		entry = { nsp, packets: client.encoder.encode({ type: EVENT_PACKET, data: [event.type, event], nsp }) };
		encoded.set(event, entry);
	}
	client._packet(entry.packets, { preEncoded: true, compress: true });
}

export type QueuedPacket = { data?: unknown };

/** Bytes of an engine.io write buffer counted so far, by buffer (engine.io replaces the array when it flushes). */
const writeBufferTallies = new WeakMap<QueuedPacket[], { counted: number; bytes: number }>();

/** What the packets of a write buffer hold, counted once each: a send checks this, so it must not walk 1,000 packets. */
export function writeBufferBytes(buffer: QueuedPacket[]): number {
	let tally = writeBufferTallies.get(buffer);
	if (!tally || tally.counted > buffer.length) {
		tally = { counted: 0, bytes: 0 };
		writeBufferTallies.set(buffer, tally);
	}
	for (; tally.counted < buffer.length; tally.counted++) {
		const data = buffer[tally.counted]?.data;
		tally.bytes += typeof data === "string" ? data.length : data instanceof Uint8Array ? data.byteLength : 0;
	}
	return tally.bytes;
}
