/**
 * IDLE_CONNECTION_TIMEOUT_MS: a connection that does nothing is closed after it. On PORT, one that
 * sends nothing (never a request: a socket held open by anyone); WebSocket and socket.io connections,
 * however quiet, stay. On GRPC_PORT, one without calls, whether it never spoke HTTP/2 or its client
 * simply stopped calling (its next call opens a new one); a connection with a stream open stays.
 */
import { connect } from "node:net";
import { join } from "node:path";
import * as grpc from "@grpc/grpc-js";
import { loadSync } from "@grpc/proto-loader";
import { pollUntil } from "../support/auth";
import { connectIo, connectWs } from "../support/realtime-clients";
import { grpcCredentials, grpcPortOf } from "../support/hostile-grpc";
import { startTelegramGateway, type TelegramGateway } from "../support/telegram-gateway";

const IDLE_MS = 1_000;
const definition = loadSync(join(__dirname, "..", "..", "proto", "gateway.proto"), { keepCase: true, longs: Number, defaults: true, oneofs: true });
const proto = grpc.loadPackageDefinition(definition) as unknown as { gateway: { v1: Record<string, grpc.ServiceClientConstructor> } };

type BotClient = grpc.Client & { ListBots(request: object, metadata: grpc.Metadata, callback: (err: grpc.ServiceError | null, answer?: { bots: unknown[] }) => void): void };
type MessageClient = grpc.Client & { StreamMessages(request: object, metadata: grpc.Metadata): grpc.ClientReadableStream<{ message?: { text?: string } }> };

/** Resolves with how long the server took to close a socket that connected and never sent a byte. */
function silentSocketLifetime(port: number): Promise<number> {
	const started = Date.now();
	const socket = connect(port, "127.0.0.1");
	socket.on("error", () => undefined);
	// Read, so the server's FIN is seen and the socket closes.
	socket.resume();
	return new Promise((resolve) => socket.once("close", () => resolve(Date.now() - started)));
}

describe("connections that do nothing", () => {
	let t: TelegramGateway;
	let port: number;

	beforeAll(async () => {
		t = await startTelegramGateway({ mode: "webhook", env: { GRPC_PORT: "0", IDLE_CONNECTION_TIMEOUT_MS: String(IDLE_MS) } });
		port = grpcPortOf(t.gw.broker);
	}, 60_000);

	afterAll(async () => {
		await t?.stop();
	});

	it("PORT: closes a connection that sends nothing once it has been silent that long", async () => {
		const lifetime = await silentSocketLifetime(Number(new URL(t.baseUrl).port));
		expect(lifetime).toBeGreaterThanOrEqual(IDLE_MS - 50);
		expect(lifetime).toBeLessThan(IDLE_MS * 8);
	}, 15_000);

	it("PORT: keeps quiet WebSocket and socket.io connections, which go on serving", async () => {
		const { bot } = await t.addBot({ username: "quiet_bot" });
		const ws = await connectWs(t.baseUrl, `?token=${t.adminToken}`);
		const io = await connectIo(t.baseUrl, { token: t.adminToken });
		try {
			await new Promise((resolve) => setTimeout(resolve, IDLE_MS * 3));
			const live = t.gw.broker.getLocalService("realtime") as unknown as { hub: { connectionCount: number } };
			expect(live.hub.connectionCount).toBe(2);
			expect(ws.closed).toBeNull();
			await ws.ping();
			expect(await io.subscribe({ bot_id: bot.id })).toMatchObject({ ok: true });
		} finally {
			ws.close();
			io.close();
		}
	}, 15_000);

	it("GRPC_PORT: closes a connection that never speaks HTTP/2 once it has been idle that long", async () => {
		const lifetime = await silentSocketLifetime(port);
		expect(lifetime).toBeGreaterThanOrEqual(IDLE_MS - 50);
		expect(lifetime).toBeLessThan(IDLE_MS * 8);
	}, 15_000);

	it("GRPC_PORT: closes a client's connection once it stops calling, and the client's next call reconnects", async () => {
		const client = new proto.gateway.v1.BotService!(`127.0.0.1:${port}`, grpc.credentials.createInsecure()) as unknown as BotClient;
		try {
			const list = () =>
				new Promise<unknown[]>((resolve, reject) => client.ListBots({}, grpcCredentials(t.adminToken), (err, answer) => (err ? reject(err) : resolve(answer!.bots))));
			const bots = await list();
			expect(client.getChannel().getConnectivityState(false)).toBe(grpc.connectivityState.READY);
			// The server's GOAWAY takes the channel out of READY.
			expect(await pollUntil(async () => client.getChannel().getConnectivityState(false) !== grpc.connectivityState.READY, IDLE_MS * 4, 50)).not.toBeNull();
			expect(await list()).toEqual(bots);
		} finally {
			client.close();
		}
	}, 15_000);

	it("GRPC_PORT: keeps a connection whose stream is open, however quiet, and the stream goes on delivering", async () => {
		const { token, bot } = await t.addBot({ username: "idle_bot" });
		const client = new proto.gateway.v1.MessageService!(`127.0.0.1:${port}`, grpc.credentials.createInsecure()) as unknown as MessageClient;
		try {
			const stream = client.StreamMessages({ bot_id: bot.id }, grpcCredentials(t.adminToken));
			const texts: string[] = [];
			let ended: string | null = null;
			stream.on("data", (event) => texts.push(event.message?.text ?? ""));
			stream.on("error", (err: grpc.ServiceError) => (ended = `${err.code} ${err.details}`));
			stream.on("end", () => (ended ??= "end"));
			await new Promise((resolve) => stream.once("metadata", resolve));
			await new Promise((resolve) => setTimeout(resolve, IDLE_MS * 3));
			expect(ended).toBeNull();

			t.telegram.userSends(token, { chat_id: 4_242, text: "after a quiet while" });
			expect(await pollUntil(async () => texts.includes("after a quiet while"), 10_000, 20)).not.toBeNull();
			expect(ended).toBeNull();
			stream.cancel();
		} finally {
			client.close();
		}
	}, 30_000);
});
