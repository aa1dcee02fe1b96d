/**
 * emitEvent writes what socket.emit(event.type, event) writes, byte for byte, encoding each event
 * once however many sockets it goes to. It leans on socket.io internals (Client._packet, the
 * client's encoder): an upgrade that changes them fails here.
 */
import { createServer, type Server as HttpServer } from "node:http";
import type { AddressInfo } from "node:net";
import { Server, type Socket } from "socket.io";
import { io as connectClient, type Socket as ClientSocket } from "socket.io-client";
import type { GatewayEvent } from "../../services/broker/event-log";
import { emitEvent } from "../../services/realtime/socket-packets";

const event = (seq: number): GatewayEvent =>
	({
		seq,
		type: "new_message",
		bot_id: 1,
		chat_id: 42,
		created_at: "2026-12-07T09:00:00.000Z",
		message: { id: seq, text: "héllo \u2028 \"quoted\" </script>", entities: [{ type: "bold", offset: 0, length: 5 }], reply_to_message_id: null },
	}) as unknown as GatewayEvent;

describe("emitEvent: socket.io packets encoded once per event", () => {
	let http: HttpServer;
	let server: Server;
	const serverSockets: Socket[] = [];
	const clients: ClientSocket[] = [];

	beforeAll(async () => {
		http = createServer();
		server = new Server(http, { transports: ["websocket"] });
		server.on("connection", (socket) => serverSockets.push(socket));
		await new Promise<void>((resolve) => http.listen(0, "127.0.0.1", resolve));
		const { port } = http.address() as AddressInfo;
		for (let i = 0; i < 3; i++) clients.push(connectClient(`http://127.0.0.1:${port}`, { transports: ["websocket"] }));
		while (serverSockets.length < 3) await new Promise((r) => setTimeout(r, 10));
	});

	afterAll(async () => {
		for (const client of clients) client.close();
		await new Promise((resolve) => server.close(resolve));
	});

	it("writes the frame socket.emit writes", () => {
		const socket = serverSockets[0];
		const frames: unknown[] = [];
		const write = jest.spyOn(socket.conn, "write").mockImplementation((data: unknown) => {
			frames.push(data);
			return socket.conn;
		});
		socket.emit("new_message", event(1));
		emitEvent(socket, event(1));
		write.mockRestore();
		expect(frames).toHaveLength(2);
		expect(frames[1]).toEqual(frames[0]);
	});

	it("delivers the event to every client under its type", async () => {
		const received = clients.map((client) => new Promise<unknown>((resolve) => client.once("new_message", resolve)));
		const sent = event(2);
		for (const socket of serverSockets) emitEvent(socket, sent);
		expect(await Promise.all(received)).toEqual([sent, sent, sent].map((e) => JSON.parse(JSON.stringify(e))));
	});

	it("encodes an event once for all its sockets, and each new event again", () => {
		const encoder = (serverSockets[0].client as unknown as { encoder: { encode: (packet: unknown) => unknown[] } }).encoder;
		const encode = jest.spyOn(Object.getPrototypeOf(encoder) as { encode: (packet: unknown) => unknown[] }, "encode");
		const first = event(3);
		for (const socket of serverSockets) emitEvent(socket, first);
		expect(encode).toHaveBeenCalledTimes(1);
		const second = event(4);
		for (const socket of serverSockets) emitEvent(socket, second);
		expect(encode).toHaveBeenCalledTimes(2);
		encode.mockRestore();
	});

	it("writes nothing to a closed connection", async () => {
		const socket = serverSockets[2];
		clients[2].close();
		await new Promise((r) => setTimeout(r, 50));
		const write = jest.spyOn(socket.conn, "write");
		emitEvent(socket, event(5));
		expect(write).not.toHaveBeenCalled();
	});
});
