/**
 * The Telegram client against a real loopback server that misbehaves: an answer trickled a byte at
 * a time (each chunk restarts undici's body timeout) still ends the call at its deadline.
 */
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { TelegramClient, TelegramNetworkError } from "../../lib/telegram/client";

describe("TelegramClient deadlines", () => {
	let server: Server;
	let root: string;
	const timers = new Set<NodeJS.Timeout>();

	beforeAll(async () => {
		server = createServer((_req, res) => {
			res.writeHead(200, { "content-type": "application/json" });
			// A byte every 50 ms for 10 s: never silent for long, never done.
			let sent = 0;
			const timer = setInterval(() => {
				if (sent++ > 200 || res.destroyed) {
					clearInterval(timer);
					res.end();
				} else res.write(" ");
			}, 50);
			timers.add(timer);
		});
		await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
		root = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
	});
	afterAll(async () => {
		for (const timer of timers) clearInterval(timer);
		server.closeAllConnections();
		await new Promise((resolve) => server.close(resolve));
	});

	it("a trickled answer ends at connect + call timeout, as a send that may have been delivered", async () => {
		const client = new TelegramClient(root, { connectTimeoutMs: 200, defaultTimeoutMs: 300 });
		try {
			const error = await client.call("123:abc", "sendMessage", { chat_id: 1, text: "x" }).catch((err: unknown) => err);
			expect(error).toBeInstanceOf(TelegramNetworkError);
			expect(error).toMatchObject({ delivered: "maybe", message: "Telegram sendMessage: no whole answer within 500 ms" });
		} finally {
			await client.close();
		}
	});
});
