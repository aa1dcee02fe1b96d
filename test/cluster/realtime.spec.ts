/**
 * Live fan-out across real processes: two api nodes (socket.io and WebSocket subscribers on each)
 * and a grpc node; a message ingested through a worker reaches every subscriber on both api nodes
 * and the gRPC stream exactly once; a key revoked through one node loses its sockets on the other.
 */
import { join } from "node:path";
import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";
import { io, type Socket } from "socket.io-client";
import WebSocket from "ws";
import { http } from "../support/harness";
import { TelegramDouble } from "../support/telegram-double";
import { startCluster, waitForRoute, type Cluster } from "./support/cluster";

const WORKER = ["auth", "bots", "chats", "ingest", "broker", "delivery"];

async function until(what: string, check: () => boolean, ms = 15_000): Promise<void> {
	const deadline = Date.now() + ms;
	while (!check()) {
		if (Date.now() > deadline) throw new Error(`${what}: not within ${ms} ms`);
		await new Promise((r) => setTimeout(r, 50));
	}
}

describe("live events across api and grpc nodes", () => {
	const telegram = new TelegramDouble();
	let cluster: Cluster;
	let token: string;
	let auth: Record<string, string>;
	let chatId: number;
	const sockets: Socket[] = [];
	const websockets: WebSocket[] = [];

	beforeAll(async () => {
		const root = await telegram.start();
		cluster = await startCluster(
			[
				{ name: "api-a", services: ["api", "auth", "realtime"] },
				{ name: "api-b", services: ["api", "auth", "realtime"] },
				{ name: "grpc-1", services: ["grpc", "auth"] },
				{ name: "worker-1", services: WORKER },
			],
			{ TELEGRAM_API_ROOT: root, PUBLIC_URL: "http://127.0.0.1:1" },
		);
		const base = cluster.node("api-a").baseUrl;
		for (const node of ["api-a", "api-b"]) await waitForRoute(cluster.node(node).baseUrl, "/api/v1/bots");
		const login = await http<{ access_token: string }>(base, "POST", "/api/v1/auth/login", { body: { username: "admin", password: "cluster-admin-password" } });
		token = login.body.access_token;
		auth = { authorization: `Bearer ${token}` };
		const botToken = telegram.addBot();
		const bot = await http<{ webhook_url: string }>(base, "POST", "/api/v1/bots", { body: { token: botToken }, headers: auth });
		expect(bot.status).toBe(201);
		// Telegram pushes to the api node, which hands the update to the worker's ingest.
		const path = bot.body.webhook_url.split("/").pop()!;
		const secret = telegram.bot(botToken).webhook!.secret_token!;
		const first = await fetch(`${base}/api/v1/telegram/webhook/${path}`, {
			method: "POST",
			headers: { "content-type": "application/json", "x-telegram-bot-api-secret-token": secret },
			body: JSON.stringify({ update_id: 1, message: { message_id: 1, date: 1_700_000_000, chat: { id: 77, type: "private", first_name: "U" }, text: "hello" } }),
		});
		expect(first.status).toBe(200);
		const chats = await http<{ data: Array<{ id: number }> }>(base, "GET", "/api/v1/chats", { headers: auth });
		chatId = chats.body.data[0]!.id;
		(globalThis as { pushUpdate?: (id: number, text: string) => Promise<Response> }).pushUpdate = (id, text) =>
			fetch(`${cluster.node("api-b").baseUrl}/api/v1/telegram/webhook/${path}`, {
				method: "POST",
				headers: { "content-type": "application/json", "x-telegram-bot-api-secret-token": secret },
				body: JSON.stringify({ update_id: id, message: { message_id: id, date: 1_700_000_000, chat: { id: 77, type: "private", first_name: "U" }, text } }),
			});
	}, 180_000);

	afterAll(async () => {
		for (const s of sockets) s.close();
		for (const w of websockets) w.terminate();
		await cluster?.stop();
		await telegram.stop();
	});

	it("a message reaches socket.io and WebSocket subscribers on both api nodes and the gRPC stream, exactly once each", async () => {
		const received: Record<string, number[]> = {};
		const record = (who: string) => (event: { seq: number; message?: { text?: string } }) => {
			if (event.message?.text?.startsWith("fanout")) (received[who] ??= []).push(event.seq);
		};
		for (const node of ["api-a", "api-b"]) {
			const socket = io(cluster.node(node).baseUrl, { auth: { token }, transports: ["websocket"], reconnection: false });
			sockets.push(socket);
			await new Promise<void>((resolve, reject) => {
				socket.once("connect", () => resolve());
				socket.once("connect_error", reject);
			});
			expect(await socket.emitWithAck("subscribe", { chat_id: chatId })).toMatchObject({ ok: true });
			socket.on("new_message", record(`socket.io@${node}`));

			const ws = new WebSocket(`${cluster.node(node).baseUrl.replace("http", "ws")}/api/v1/ws?token=${token}`);
			websockets.push(ws);
			await new Promise((resolve) => ws.once("open", resolve));
			ws.send(JSON.stringify({ action: "subscribe", chat_id: chatId }));
			await new Promise<void>((resolve) =>
				ws.on("message", (data) => {
					const frame = JSON.parse(data.toString()) as { type: string; seq: number; message?: { text?: string } };
					if (frame.type === "subscribed") resolve();
					if (frame.type === "new_message") record(`websocket@${node}`)(frame);
				}),
			);
		}
		const definition = protoLoader.loadSync(join(__dirname, "..", "..", "proto", "gateway.proto"), { keepCase: true, longs: Number, defaults: true, oneofs: true });
		const proto = grpc.loadPackageDefinition(definition) as unknown as { gateway: { v1: { MessageService: grpc.ServiceClientConstructor } } };
		const client = new proto.gateway.v1.MessageService(`127.0.0.1:${cluster.node("grpc-1").grpcPort}`, grpc.credentials.createInsecure());
		const metadata = new grpc.Metadata();
		metadata.set("authorization", `Bearer ${token}`);
		const stream = client.StreamChatMessages({ chat_id: chatId }, metadata) as grpc.ClientReadableStream<{ seq: number; message?: { text?: string } }>;
		stream.on("data", record("grpc@grpc-1"));
		stream.on("error", () => undefined);
		await new Promise((resolve) => stream.once("metadata", resolve));

		const push = (globalThis as unknown as { pushUpdate: (id: number, text: string) => Promise<Response> }).pushUpdate;
		for (let i = 0; i < 10; i++) expect((await push(100 + i, `fanout ${i}`)).status).toBe(200);
		const consumers = ["socket.io@api-a", "socket.io@api-b", "websocket@api-a", "websocket@api-b", "grpc@grpc-1"];
		await until("every consumer has the ten messages", () => consumers.every((c) => (received[c]?.length ?? 0) >= 10)).catch((err: Error) => {
			throw new Error(`${err.message}: ${JSON.stringify(Object.fromEntries(consumers.map((c) => [c, received[c] ?? []])))}`);
		});
		await new Promise((r) => setTimeout(r, 500)); // and no more than that
		const expected = received["grpc@grpc-1"]!.slice().sort((a, b) => a - b);
		for (const consumer of consumers) expect(received[consumer]).toEqual(expected);
		stream.cancel();
		client.close();
	});

	it("an API key revoked through api-a loses its live subscription on api-b within a second", async () => {
		const base = cluster.node("api-a").baseUrl;
		const key = await http<{ id: number; key: string }>(base, "POST", "/api/v1/apikeys", { body: { name: "socket" }, headers: auth });
		const socket = io(cluster.node("api-b").baseUrl, { auth: { token: key.body.key }, transports: ["websocket"], reconnection: false });
		sockets.push(socket);
		await new Promise<void>((resolve, reject) => {
			socket.once("connect", () => resolve());
			socket.once("connect_error", reject);
		});
		expect(await socket.emitWithAck("subscribe", { chat_id: chatId })).toMatchObject({ ok: true });
		let disconnectedAt = 0;
		socket.on("disconnect", () => (disconnectedAt = Date.now()));
		const revokedAt = Date.now();
		expect((await http(base, "DELETE", `/api/v1/apikeys/${key.body.id}`, { headers: auth })).status).toBe(204);
		await until("the socket is disconnected", () => disconnectedAt > 0, 5_000);
		expect(disconnectedAt - revokedAt).toBeLessThanOrEqual(1_000);
	});
});
