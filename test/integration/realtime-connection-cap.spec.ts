/**
 * LIVE_CONNECTIONS_PER_PRINCIPAL: one principal's live connections on a node (socket.io sockets,
 * plain WebSockets and gRPC streams together) are capped, so one credential cannot grow the
 * server's memory without bound; past the cap a connection is refused with RATE_LIMITED, other
 * principals are unaffected, and a closed connection frees its place. LIVE_CONNECTIONS_PER_USER
 * caps a user's logins and API keys together (each key has a principal's allowance of its own).
 */
import { join } from "node:path";
import * as grpc from "@grpc/grpc-js";
import { loadSync } from "@grpc/proto-loader";
import { createKey, createUser, pollUntil } from "../support/auth";
import { connectIo, connectWs, grpcStreamOutcome, ioConnectError, wsRefusal, type IoClient, type WsClient } from "../support/realtime-clients";
import { freePort } from "../support/processes";
import { startTelegramGateway, type TelegramGateway } from "../support/telegram-gateway";

const CAP = 3;
const USER_CAP = 4;
const definition = loadSync(join(__dirname, "..", "..", "proto", "gateway.proto"), { keepCase: true, longs: Number, defaults: true, oneofs: true });
const proto = grpc.loadPackageDefinition(definition) as unknown as { gateway: { v1: { MessageService: grpc.ServiceClientConstructor } } };

interface Hubs {
	realtime: { hub: { connectionCount: number } };
	grpc: { hub: { connectionCount: number } };
}

describe("live connections per principal", () => {
	let t: TelegramGateway;
	let grpcClient: grpc.Client & { StreamMessages(request: object, metadata: grpc.Metadata): grpc.ClientReadableStream<unknown> };
	const opened: Array<{ close(): void }> = [];

	const hubs = (): Hubs => ({
		realtime: t.gw.broker.getLocalService("realtime") as unknown as Hubs["realtime"],
		grpc: t.gw.broker.getLocalService("grpc") as unknown as Hubs["grpc"],
	});
	const live = () => hubs().realtime.hub.connectionCount + hubs().grpc.hub.connectionCount;

	const grpcStream = (token: string): Promise<"open" | grpc.StatusObject> => {
		const metadata = new grpc.Metadata();
		metadata.set("authorization", `Bearer ${token}`);
		return grpcStreamOutcome(grpcClient, metadata, opened);
	};

	beforeAll(async () => {
		const grpcPort = await freePort();
		t = await startTelegramGateway({ mode: "polling", env: { GRPC_PORT: String(grpcPort), LIVE_CONNECTIONS_PER_PRINCIPAL: String(CAP), LIVE_CONNECTIONS_PER_USER: String(USER_CAP) } });
		grpcClient = new proto.gateway.v1.MessageService(`127.0.0.1:${grpcPort}`, grpc.credentials.createInsecure()) as unknown as typeof grpcClient;
	}, 60_000);

	afterEach(async () => {
		for (const connection of opened.splice(0)) connection.close();
		await pollUntil(async () => live() === 0, 5_000, 20);
	});

	afterAll(async () => {
		grpcClient?.close();
		await t?.stop();
	});

	it("counts socket.io, WebSocket and gRPC connections together and refuses the next one on every channel", async () => {
		const socket: IoClient = await connectIo(t.baseUrl, { token: t.adminToken });
		opened.push(socket);
		const ws: WsClient = await connectWs(t.baseUrl, `?token=${t.adminToken}`);
		opened.push(ws);
		expect(await grpcStream(t.adminToken)).toBe("open");
		expect(live()).toBe(CAP);

		const refused = await ioConnectError(t.baseUrl, { token: t.adminToken });
		expect(refused.data).toMatchObject({ code: "RATE_LIMITED", message: expect.stringContaining(`at most ${CAP}`) });
		const upgrade = await wsRefusal(t.baseUrl, `?token=${t.adminToken}`);
		expect(upgrade).toMatchObject({
			status: 429,
			body: { error: { code: "RATE_LIMITED", message: expect.stringContaining("LIVE_CONNECTIONS_PER_PRINCIPAL"), details: { retry_after: 1 } } },
			headers: { "retry-after": "1", "x-request-id": expect.stringMatching(/^[A-Za-z0-9._:-]{1,128}$/) },
		});
		const stream = await grpcStream(t.adminToken);
		expect(stream).toMatchObject({ code: grpc.status.RESOURCE_EXHAUSTED });
		expect(live()).toBe(CAP);
	}, 30_000);

	it("leaves other principals their own allowance, and a closed connection frees its place", async () => {
		for (let i = 0; i < CAP; i++) opened.push(await connectIo(t.baseUrl, { token: t.adminToken }));
		const viewer = await createUser(t.gw, t.adminToken, ["viewer"]);
		const theirs = await connectIo(t.baseUrl, { token: viewer.token });
		opened.push(theirs);
		expect((await ioConnectError(t.baseUrl, { token: t.adminToken })).data).toMatchObject({ code: "RATE_LIMITED" });

		opened.shift()!.close();
		await pollUntil(async () => live() === CAP, 5_000, 20);
		opened.push(await connectIo(t.baseUrl, { token: t.adminToken }));
		expect(live()).toBe(CAP + 1);
	}, 30_000);

	it("holds when many connections of one principal arrive at once", async () => {
		const attempts = await Promise.allSettled(Array.from({ length: 12 }, () => connectWs(t.baseUrl, `?token=${t.adminToken}`)));
		for (const attempt of attempts) if (attempt.status === "fulfilled") opened.push(attempt.value);
		// Admissions that raced past the handshake check are closed when they register.
		await pollUntil(async () => live() <= CAP, 5_000, 20);
		expect(live()).toBe(CAP);
	}, 30_000);

	it("caps a user's logins and API keys together: a second key does not bring a new allowance past the user's", async () => {
		const first = (await createKey(t.baseUrl, t.adminToken, { name: "cap-first" })).key;
		const second = (await createKey(t.baseUrl, t.adminToken, { name: "cap-second" })).key;
		for (let i = 0; i < CAP; i++) opened.push(await connectIo(t.baseUrl, { token: t.adminToken }));
		opened.push(await connectWs(t.baseUrl, `?api_key=${first}`));
		expect(live()).toBe(USER_CAP);

		const upgrade = await wsRefusal(t.baseUrl, `?api_key=${second}`);
		expect(upgrade).toMatchObject({ status: 429, body: { error: { code: "RATE_LIMITED", message: expect.stringContaining("LIVE_CONNECTIONS_PER_USER") } } });
		expect((await ioConnectError(t.baseUrl, { token: second })).data).toMatchObject({ code: "RATE_LIMITED", message: expect.stringContaining(`at most ${USER_CAP} per user`) });
		expect(await grpcStream(second)).toMatchObject({ code: grpc.status.RESOURCE_EXHAUSTED });
		// Another user is not held by this one's count.
		const viewer = await createUser(t.gw, t.adminToken, ["viewer"]);
		opened.push(await connectIo(t.baseUrl, { token: viewer.token }));
		expect(live()).toBe(USER_CAP + 1);
	}, 30_000);
});
