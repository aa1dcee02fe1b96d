/**
 * A node shutting down (rolling deploy, scale-down) closes its socket.io connections so that clients
 * reconnect, to another node, and resume with since_seq. Told "io server disconnect" (the server's
 * own DISCONNECT packet), socket.io-client gives up for good: it must see the transport close.
 */
import { connectIo, connectWs, waitUntil } from "../support/realtime-clients";
import { startTelegramGateway, type TelegramGateway } from "../support/telegram-gateway";

describe("live connections when the node shuts down", () => {
	let t: TelegramGateway;

	beforeAll(async () => {
		t = await startTelegramGateway({ mode: "webhook" });
	}, 60_000);
	afterAll(() => t.stop());

	it("socket.io clients lose their transport (and reconnect), not a server disconnect; WebSockets are closed as going away", async () => {
		const io = await connectIo(t.baseUrl, { token: t.adminToken });
		const ws = await connectWs(t.baseUrl, `?token=${t.adminToken}`);
		// What bin/gateway.ts runs on SIGTERM before stopping the broker, while the node is still up.
		await (t.gw.broker.getLocalService("realtime") as unknown as { drain(): Promise<void> }).drain();
		await io.waitForDisconnect();
		expect(io.disconnectReason).toBe("transport close");
		await waitUntil(() => ws.closed !== null, 5_000, "the WebSocket to close");
		expect(ws.closed?.code).toBe(1001);
	});
});
