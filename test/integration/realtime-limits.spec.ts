/**
 * What a socket client cannot make the server hold: answers it never reads (error frames on the
 * plain WebSocket, acks on socket.io) count against the same buffer cap as events; requests sent
 * faster than they are answered are capped at 1,000 waiting; a handshake
 * hung up half-way leaves nothing behind; an upgrade to a path nobody serves is answered and closed;
 * and a key revoked while a connection was being authenticated loses that connection too.
 */
import { randomBytes } from "node:crypto";
import net from "node:net";
import WebSocket from "ws";
import type { CloseReason } from "../../mixins/event-stream/subscription-hub";
import { SLOW_CLIENT, TOO_MANY_WAITING } from "../../services/realtime/protocol";
import { createKey } from "../support/auth";
import { connectWs, waitUntil } from "../support/realtime-clients";
import { startTelegramGateway, type TelegramGateway } from "../support/telegram-gateway";

interface RealtimeInternals {
	hub: { connectionCount: number; tooSlow(subscriber: unknown, reason?: CloseReason): void };
	ws: { connections: number };
	io: { of(nsp: string): { sockets: Map<string, unknown> } };
	credentials: Map<string, string>;
	resolveCredential(credential: string): Promise<unknown>;
	charge(principal: unknown): Promise<void>;
}

/** A masked client text frame (RFC 6455), small payloads only. */
function textFrame(payload: string): Buffer {
	const data = Buffer.from(payload);
	const mask = randomBytes(4);
	return Buffer.concat([Buffer.from([0x81, 0x80 | data.length]), mask, Buffer.from(data.map((b, i) => b ^ mask[i % 4]!))]);
}

describe("realtime: what a client cannot make the server hold", () => {
	let t: TelegramGateway;
	let realtime: RealtimeInternals;
	let port: number;

	beforeAll(async () => {
		t = await startTelegramGateway({ mode: "polling" });
		realtime = t.gw.broker.getLocalService("realtime") as unknown as RealtimeInternals;
		port = Number(new URL(t.baseUrl).port);
	}, 60_000);
	afterAll(() => t?.stop());

	/** A raw WebSocket client of the admin's on the gateway, which can stop reading. */
	async function rawWebSocket(): Promise<net.Socket> {
		const socket = net.connect(port, "127.0.0.1");
		await new Promise((resolve) => socket.once("connect", resolve));
		socket.on("error", () => undefined);
		socket.write(
			`GET /api/v1/ws?token=${t.adminToken} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
				`Sec-WebSocket-Key: ${randomBytes(16).toString("base64")}\r\nSec-WebSocket-Version: 13\r\n\r\n`,
		);
		await new Promise((resolve) => socket.once("data", resolve));
		await waitUntil(() => realtime.ws.connections === 1, 5_000, "the WebSocket connected");
		return socket;
	}

	/** A socket.io connection of the admin's spoken to over a bare WebSocket, which can stop reading. */
	async function rawSocketIo(): Promise<WebSocket> {
		const ws = new WebSocket(`${t.baseUrl.replace("http", "ws")}/socket.io/?EIO=4&transport=websocket`);
		const packets: string[] = [];
		ws.on("message", (data) => packets.push(data.toString()));
		ws.on("error", () => undefined);
		await new Promise((resolve) => ws.once("open", resolve));
		await waitUntil(() => packets.some((p) => p.startsWith("0{")), 5_000, "engine.io open");
		ws.send(`40${JSON.stringify({ token: t.adminToken })}`);
		await waitUntil(() => packets.some((p) => p.startsWith("40{")) && realtime.hub.connectionCount === 1, 5_000, "socket.io connected");
		return ws;
	}

	/** Why the hub closed the connections it closed (undefined: the buffer cap's reason). */
	function closeReasons(): { reasons: Array<string | undefined>; restore(): void } {
		const reasons: Array<string | undefined> = [];
		const original = realtime.hub.tooSlow.bind(realtime.hub);
		const spy = jest.spyOn(realtime.hub, "tooSlow").mockImplementation((subscriber, reason) => {
			reasons.push(reason?.message);
			original(subscriber, reason);
		});
		return { reasons, restore: () => spy.mockRestore() };
	}

	/** Counts the frames the server has started answering (each is charged first). */
	function countCharges(): { count: number; restore(): void } {
		const original = realtime.charge.bind(realtime);
		const counter = { count: 0, restore: () => spy.mockRestore() };
		const spy = jest.spyOn(realtime, "charge").mockImplementation((principal) => {
			counter.count += 1;
			return original(principal);
		});
		return counter;
	}

	/** Holds every frame's rate-limit charge (so requests wait unanswered) until `release`. */
	function holdRequests(): { release(): void } {
		let release!: () => void;
		const gate = new Promise<void>((resolve) => (release = resolve));
		const original = realtime.charge.bind(realtime);
		const spy = jest.spyOn(realtime, "charge").mockImplementation(async (principal) => {
			await gate;
			return original(principal);
		});
		return {
			release() {
				release();
				spy.mockRestore();
			},
		};
	}

	it("plain WebSocket: a client sending frames it never reads the answers to is closed at the buffer cap, malformed frames included", async () => {
		const closed = closeReasons();
		try {
			const socket = await rawWebSocket();
			socket.pause(); // never reads again
			// Each one-byte frame is answered with an error frame of ~90 bytes: 8 MB of answers after
			// ~100,000, once the kernel's buffers are full. Sent 200 at a time, each batch taken up before
			// the next is sent (the gateway runs in this process), so it is the answers that pile up.
			const charged = countCharges();
			const batch = Buffer.concat(Array.from({ length: 200 }, () => textFrame("x")));
			try {
				for (let sent = 200; sent <= 400_000 && realtime.ws.connections > 0; sent += 200) {
					socket.write(batch);
					while (charged.count < sent && realtime.ws.connections > 0) await new Promise((resolve) => setImmediate(resolve));
				}
			} finally {
				charged.restore();
			}
			await waitUntil(() => realtime.ws.connections === 0 && realtime.hub.connectionCount === 0, 10_000, "the server closed the client that does not read");
			expect(closed.reasons).toEqual([undefined]);
			socket.destroy();
		} finally {
			closed.restore();
		}
	}, 120_000); // ~100,000 frames: 5 s alone, over 60 s once on a loaded host (a full npm test)

	it.each([SLOW_CLIENT.maxWaitingRequests + 1, 20_000])("plain WebSocket: a client sending frames faster than they are answered is closed once 1,000 wait, and told why (%d frames sent)", async (frames) => {
		const closed = closeReasons();
		const held = holdRequests();
		try {
			const socket = await rawWebSocket();
			let received = "";
			socket.on("data", (chunk: Buffer) => (received += chunk.toString("latin1")));
			// A client still busy sending when it is cut off (it reads a moment later): closing the
			// connection at once, with its frames unread, reset it, and the error frame was lost.
			const frame = textFrame('{"action":"ping"}');
			socket.pause();
			for (let sent = 0; sent < frames; sent += 500) {
				socket.write(Buffer.concat(Array.from({ length: Math.min(500, frames - sent) }, () => frame)));
				await new Promise((resolve) => setTimeout(resolve, 5));
			}
			socket.resume();
			await waitUntil(() => realtime.ws.connections === 0 && realtime.hub.connectionCount === 0, 5_000, "the server closed the client");
			expect(closed.reasons).toEqual([TOO_MANY_WAITING.message]);
			// It was told why before being cut off (no pong: none of its pings had been answered).
			await waitUntil(() => received.includes(TOO_MANY_WAITING.message), 2_000, "the error frame");
			expect(received).toContain(`{"type":"error","code":"RATE_LIMITED","message":"${TOO_MANY_WAITING.message}"}`);
			expect(received).not.toContain("pong");
			socket.destroy();
		} finally {
			held.release();
			closed.restore();
		}
	});

	it("socket.io: a client emitting with acks it never reads is closed at the buffer cap", async () => {
		const closed = closeReasons();
		try {
			const ws = await rawSocketIo();
			(ws as unknown as { _socket: net.Socket })._socket.pause(); // never reads again
			// Each batch is taken up before the next is sent: it is the acks that pile up, not the requests.
			const charged = countCharges();
			try {
				for (let i = 1; i <= 20_000 && realtime.hub.connectionCount > 0; i++) {
					ws.send(`42${i}["subscribe",{}]`);
					if (i % 200 === 0) while (charged.count < i && realtime.hub.connectionCount > 0) await new Promise((resolve) => setImmediate(resolve));
				}
			} finally {
				charged.restore();
			}
			await waitUntil(() => realtime.hub.connectionCount === 0 && realtime.io.of("/").sockets.size === 0, 10_000, "the server closed the client that does not read");
			expect(closed.reasons).toEqual([undefined]);
			ws.terminate();
		} finally {
			closed.restore();
		}
	}, 60_000);

	it("socket.io: a client emitting faster than it is answered is closed once 1,000 requests wait", async () => {
		const closed = closeReasons();
		const held = holdRequests();
		try {
			const ws = await rawSocketIo();
			const acks: string[] = [];
			ws.on("message", (data) => acks.push(data.toString()));
			for (let i = 0; i <= SLOW_CLIENT.maxWaitingRequests; i++) ws.send(`42${i}["subscribe",{}]`);
			await waitUntil(() => realtime.hub.connectionCount === 0 && realtime.io.of("/").sockets.size === 0, 5_000, "the server closed the client");
			expect(closed.reasons).toEqual([TOO_MANY_WAITING.message]);
			// It was told why before being cut off.
			await waitUntil(() => acks.some((p) => p.includes(TOO_MANY_WAITING.message)), 2_000, "the error event");
			expect(acks.find((p) => p.includes(TOO_MANY_WAITING.message))).toMatch(/^42\["error",\{"code":"RATE_LIMITED"/);
			ws.terminate();
		} finally {
			held.release();
			closed.restore();
		}
	});

	it("socket.io: clients hanging up while their credential is checked leave nothing in the hub", async () => {
		const original = realtime.resolveCredential.bind(realtime);
		const spy = jest.spyOn(realtime, "resolveCredential").mockImplementation(async (credential) => {
			await new Promise((resolve) => setTimeout(resolve, 100));
			return original(credential);
		});
		try {
			for (let i = 0; i < 10; i++) {
				const ws = new WebSocket(`${t.baseUrl.replace("http", "ws")}/socket.io/?EIO=4&transport=websocket`);
				ws.on("error", () => undefined);
				await new Promise<void>((resolve) => ws.on("message", (data) => data.toString().startsWith("0{") && resolve()));
				ws.send(`40${JSON.stringify({ token: t.adminToken })}`);
				ws.terminate();
			}
			await new Promise((resolve) => setTimeout(resolve, 500));
			expect(spy).toHaveBeenCalledTimes(10);
			expect([realtime.hub.connectionCount, realtime.credentials.size, realtime.io.of("/").sockets.size]).toEqual([0, 0, 0]);
		} finally {
			spy.mockRestore();
		}
	});

	it("socket.io: an engine.io session that never joins the namespace (no credential seen yet) is dropped after 10 s, not 45", async () => {
		const ws = new WebSocket(`${t.baseUrl.replace("http", "ws")}/socket.io/?EIO=4&transport=websocket`);
		ws.on("error", () => undefined);
		const opened = Date.now();
		const closed = new Promise<number>((resolve) => ws.once("close", () => resolve(Date.now() - opened)));
		await new Promise((resolve) => ws.once("open", resolve));
		const after = await Promise.race([closed, new Promise<number>((resolve) => setTimeout(() => resolve(-1), 20_000))]);
		ws.terminate();
		// Not a speed figure: the bound says which timeout closed it (10 s, against socket.io's default 45 s).
		expect(after).toBeGreaterThan(9_000);
		expect(after).toBeLessThan(20_000);
	}, 30_000);

	it("an upgrade to a path nobody serves is answered 404 and closed (it held its socket open for ever)", async () => {
		for (const path of ["/nope", "/api/v1/ws/", "/api/v1/ws2"]) {
			const socket = net.connect(port, "127.0.0.1");
			let answer = "";
			socket.on("data", (chunk: Buffer) => (answer += chunk.toString()));
			const closed = new Promise((resolve) => socket.once("close", resolve));
			socket.write(`GET ${path} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: ${randomBytes(16).toString("base64")}\r\nSec-WebSocket-Version: 13\r\n\r\n`);
			await Promise.race([closed, new Promise((_, reject) => setTimeout(() => reject(new Error(`${path}: not closed`)), 3_000))]);
			expect(answer).toMatch(/^HTTP\/1.1 404 Not Found\r\n/);
			expect(answer).toContain('"code":"NOT_FOUND"');
		}
	});

	it("a key revoked while a connection with it was being authenticated loses that connection within a second", async () => {
		const key = await createKey(t.baseUrl, t.adminToken, { name: "revoked-mid-handshake" });
		const original = realtime.resolveCredential.bind(realtime);
		let revoke: Promise<unknown> | undefined;
		// The key's check answers from before the revocation, as an argon2 check under way would.
		const spy = jest.spyOn(realtime, "resolveCredential").mockImplementation(async (credential) => {
			const answer = await original(credential);
			if (credential === key.key && !revoke) {
				revoke = t.api("DELETE", `/apikeys/${key.id}`);
				await revoke;
				await new Promise((resolve) => setTimeout(resolve, 50)); // auth.changed is heard before the connection registers
			}
			return answer;
		});
		try {
			const client = await connectWs(t.baseUrl, `?token=${key.key}`);
			expect(client.open).toBe(true);
			const connectedAt = Date.now();
			await waitUntil(() => !client.open, 2_000, "the connection of the revoked key closed");
			expect(Date.now() - connectedAt).toBeLessThan(1_000);
			expect(client.frames.at(-1)).toMatchObject({ type: "error", code: "UNAUTHORIZED" });
		} finally {
			spy.mockRestore();
		}
	});
});
