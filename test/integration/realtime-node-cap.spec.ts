/**
 * LIVE_CONNECTIONS_PER_NODE: the live connections one node holds, whoever holds them, are capped,
 * so the node's memory is bounded whatever the number of users and keys. Past the cap a signed-in
 * connection is refused with UNAVAILABLE (503, Retry-After: another node may take it) on every
 * channel, and a socket.io session is refused before it is made, since it holds memory before its
 * credential comes. A closed connection or session frees its place.
 */
import { join } from "node:path";
import * as grpc from "@grpc/grpc-js";
import { loadSync } from "@grpc/proto-loader";
import { createKey, createUser, pollUntil } from "../support/auth";
import { connectIo, connectWs, grpcStreamOutcome, ioConnectError, upgradeRefusal, wsRefusal, wsUrl } from "../support/realtime-clients";
import { freePort } from "../support/processes";
import { startTelegramGateway, type TelegramGateway } from "../support/telegram-gateway";

const NODE_CAP = 3;
const definition = loadSync(join(__dirname, "..", "..", "proto", "gateway.proto"), { keepCase: true, longs: Number, defaults: true, oneofs: true });
const proto = grpc.loadPackageDefinition(definition) as unknown as { gateway: { v1: { MessageService: grpc.ServiceClientConstructor } } };

interface Hub {
	hub: { connectionCount: number };
}

/** An engine.io session opened over HTTP long-polling that never signs in: its sid. */
async function openSession(baseUrl: string): Promise<string> {
	const res = await fetch(`${baseUrl}/socket.io/?EIO=4&transport=polling`);
	const text = await res.text();
	if (res.status !== 200) throw new Error(`handshake answered ${res.status}: ${text}`);
	return (JSON.parse(text.slice(1)) as { sid: string }).sid;
}

/** Ends a polling session (engine.io's close packet). */
async function closeSession(baseUrl: string, sid: string): Promise<void> {
	await fetch(`${baseUrl}/socket.io/?EIO=4&transport=polling&sid=${sid}`, { method: "POST", body: "1" });
}

describe("live connections per node", () => {
	let t: TelegramGateway;
	let grpcClient: grpc.Client & { StreamMessages(request: object, metadata: grpc.Metadata): grpc.ClientReadableStream<unknown> };
	const opened: Array<{ close(): void | Promise<void> }> = [];

	const hub = (name: string) => (t.gw.broker.getLocalService(name) as unknown as Hub).hub;
	const live = () => hub("realtime").connectionCount + hub("grpc").connectionCount;
	const sessions = () => (t.gw.broker.getLocalService("realtime") as unknown as { io: { engine: { clientsCount: number } } }).io.engine.clientsCount;

	const grpcStream = (credential: { token?: string; apiKey?: string }): Promise<"open" | grpc.StatusObject> => {
		const metadata = new grpc.Metadata();
		if (credential.token) metadata.set("authorization", `Bearer ${credential.token}`);
		if (credential.apiKey) metadata.set("x-api-key", credential.apiKey);
		return grpcStreamOutcome(grpcClient, metadata, opened);
	};

	beforeAll(async () => {
		const grpcPort = await freePort();
		t = await startTelegramGateway({ mode: "polling", env: { GRPC_PORT: String(grpcPort), LIVE_CONNECTIONS_PER_NODE: String(NODE_CAP) } });
		grpcClient = new proto.gateway.v1.MessageService(`127.0.0.1:${grpcPort}`, grpc.credentials.createInsecure()) as unknown as typeof grpcClient;
	}, 60_000);

	afterEach(async () => {
		for (const connection of opened.splice(0)) await connection.close();
		await pollUntil(async () => live() === 0 && sessions() === 0, 5_000, 20);
	});

	afterAll(async () => {
		grpcClient?.close();
		await t?.stop();
	});

	it("counts every principal's connections on every channel, refuses the next one with UNAVAILABLE, and a closed one frees its place", async () => {
		const viewer = await createUser(t.gw, t.adminToken, ["viewer"]);
		const key = (await createKey(t.baseUrl, t.adminToken, { name: "node-cap" })).key;
		opened.push(await connectIo(t.baseUrl, { token: t.adminToken }));
		opened.push(await connectWs(t.baseUrl, `?token=${viewer.token}`));
		expect(await grpcStream({ apiKey: key })).toBe("open");
		expect(live()).toBe(NODE_CAP);

		// A fourth principal, well under its own allowance, on each channel.
		const other = await createUser(t.gw, t.adminToken, ["viewer"]);
		const refused = await ioConnectError(t.baseUrl, { token: other.token });
		expect(refused.data).toMatchObject({ code: "UNAVAILABLE", message: expect.stringContaining("LIVE_CONNECTIONS_PER_NODE"), details: { retry_after: 1 } });
		expect(await wsRefusal(t.baseUrl, `?token=${other.token}`)).toMatchObject({
			status: 503,
			body: { error: { code: "UNAVAILABLE", message: expect.stringContaining("LIVE_CONNECTIONS_PER_NODE"), details: { retry_after: 1 } } },
			headers: { "retry-after": "1" },
		});
		expect(await grpcStream({ token: other.token })).toMatchObject({ code: grpc.status.UNAVAILABLE, details: expect.stringContaining("LIVE_CONNECTIONS_PER_NODE") });
		expect(live()).toBe(NODE_CAP);

		await opened.shift()!.close();
		await pollUntil(async () => live() === NODE_CAP - 1, 5_000, 20);
		opened.push(await connectWs(t.baseUrl, `?token=${other.token}`));
		expect(live()).toBe(NODE_CAP);
	}, 30_000);

	it("counts socket.io sessions from their opening: sessions that never sign in fill the node, and new ones are refused before they are made", async () => {
		const sids: string[] = [];
		for (let i = 0; i < NODE_CAP; i++) sids.push(await openSession(t.baseUrl));
		for (const sid of sids) opened.push({ close: () => closeSession(t.baseUrl, sid) });
		expect(sessions()).toBe(NODE_CAP);

		const polling = await fetch(`${t.baseUrl}/socket.io/?EIO=4&transport=polling`, { headers: { "x-request-id": "node-cap-check" } });
		expect(polling.status).toBe(503);
		expect(polling.headers.get("retry-after")).toBe("1");
		expect(polling.headers.get("x-request-id")).toBe("node-cap-check");
		expect(await polling.json()).toEqual({ error: { code: "UNAVAILABLE", message: expect.stringContaining("LIVE_CONNECTIONS_PER_NODE"), details: { retry_after: 1 } } });
		expect(await upgradeRefusal(wsUrl(t.baseUrl, "/socket.io/?EIO=4&transport=websocket"))).toMatchObject({ status: 503, body: { error: { code: "UNAVAILABLE" } }, headers: { "retry-after": "1" } });
		await expect(connectIo(t.baseUrl, { token: t.adminToken })).rejects.toThrow();
		expect(sessions()).toBe(NODE_CAP);

		// The sessions that exist go on being served.
		const poll = await fetch(`${t.baseUrl}/socket.io/?EIO=4&transport=polling&sid=${sids[0]}`, { method: "POST", body: "3" });
		expect(poll.status).toBe(200);

		await closeSession(t.baseUrl, sids.shift()!);
		await pollUntil(async () => sessions() === NODE_CAP - 1, 5_000, 20);
		opened.push(await connectIo(t.baseUrl, { token: t.adminToken }));
		expect(live()).toBe(1);
	}, 30_000);
});
