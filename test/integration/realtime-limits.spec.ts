/**
 * What a socket client cannot make the server hold: answers it never reads (error frames on the
 * plain WebSocket, acks on socket.io) count against the same buffer cap as events; a handshake
 * hung up half-way leaves nothing behind; an upgrade to a path nobody serves is answered and closed;
 * and a key revoked while a connection was being authenticated loses that connection too.
 */
import { randomBytes } from "node:crypto";
import net from "node:net";
import WebSocket from "ws";
import { createKey } from "../support/auth";
import { connectWs, waitUntil } from "../support/realtime-clients";
import { startTelegramGateway, type TelegramGateway } from "../support/telegram-gateway";

interface RealtimeInternals {
	hub: { connectionCount: number };
	ws: { connections: number };
	io: { of(nsp: string): { sockets: Map<string, unknown> } };
	credentials: Map<string, string>;
	resolveCredential(credential: string): Promise<unknown>;
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

	it("plain WebSocket: a client sending frames it never reads the answers to is closed at the buffer cap, malformed frames included", async () => {
		const socket = net.connect(port, "127.0.0.1");
		await new Promise((resolve) => socket.once("connect", resolve));
		socket.write(
			`GET /api/v1/ws?token=${t.adminToken} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
				`Sec-WebSocket-Key: ${randomBytes(16).toString("base64")}\r\nSec-WebSocket-Version: 13\r\n\r\n`,
		);
		await new Promise((resolve) => socket.once("data", resolve));
		await waitUntil(() => realtime.ws.connections === 1, 5_000, "the WebSocket connected");
		socket.pause(); // never reads again
		socket.on("error", () => undefined);
		// Each one-byte frame is answered with an error frame of ~90 bytes: 8 MB of answers after ~100,000.
		const chunk = Buffer.concat(Array.from({ length: 1_000 }, () => textFrame("x")));
		for (let i = 0; i < 200 && realtime.ws.connections > 0; i++) {
			if (!socket.write(chunk)) await Promise.race([new Promise((resolve) => socket.once("drain", resolve)), new Promise((resolve) => setTimeout(resolve, 200))]);
		}
		await waitUntil(() => realtime.ws.connections === 0 && realtime.hub.connectionCount === 0, 10_000, "the server closed the client that does not read");
		socket.destroy();
	}, 30_000);

	it("socket.io: a client emitting with acks it never reads is closed at the buffer cap", async () => {
		const ws = new WebSocket(`${t.baseUrl.replace("http", "ws")}/socket.io/?EIO=4&transport=websocket`);
		const packets: string[] = [];
		ws.on("message", (data) => packets.push(data.toString()));
		ws.on("error", () => undefined);
		await new Promise((resolve) => ws.once("open", resolve));
		await waitUntil(() => packets.some((p) => p.startsWith("0{")), 5_000, "engine.io open");
		ws.send(`40${JSON.stringify({ token: t.adminToken })}`);
		await waitUntil(() => packets.some((p) => p.startsWith("40{")) && realtime.hub.connectionCount === 1, 5_000, "socket.io connected");
		(ws as unknown as { _socket: net.Socket })._socket.pause(); // never reads again
		for (let i = 0; i < 20_000 && realtime.hub.connectionCount > 0; i++) {
			ws.send(`42${i}["subscribe",{}]`);
			if (i % 500 === 0) await new Promise((resolve) => setImmediate(resolve));
		}
		await waitUntil(() => realtime.hub.connectionCount === 0 && realtime.io.of("/").sockets.size === 0, 10_000, "the server closed the client that does not read");
		ws.terminate();
	}, 30_000);

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
