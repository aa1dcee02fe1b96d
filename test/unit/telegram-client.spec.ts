/**
 * The Telegram client against a real loopback server that misbehaves: an answer trickled a byte at
 * a time (each chunk restarts undici's body timeout) still ends the call at its deadline.
 */
import { createServer, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { isSendMethod, TelegramApiError, TelegramClient, TelegramNetworkError } from "../../lib/telegram/client";
import { Slots } from "../../lib/slots";

/** Loopback servers a describe block starts, all closed after it. */
function loopbackServers() {
	const list: Server[] = [];
	afterAll(async () => {
		for (const server of list) {
			server.closeAllConnections();
			await new Promise((resolve) => server.close(resolve));
		}
	});
	return {
		list,
		async serve(handler: Parameters<typeof createServer>[1]): Promise<string> {
			const server = createServer(handler);
			list.push(server);
			await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
			return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
		},
	};
}

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

describe("TelegramClient answers", () => {
	const servers = loopbackServers();
	const serve = servers.serve;

	it("a chunked answer (no Content-Length) is cut off past 50 MB, not read into memory whole", async () => {
		let written = 0;
		const root = await serve((_req, res) => {
			res.writeHead(200, { "content-type": "application/json" });
			const chunk = Buffer.alloc(1024 * 1024, 0x20);
			const more = () => {
				while (!res.destroyed && written < 200 * 1024 * 1024) {
					written += chunk.length;
					if (!res.write(chunk)) return void res.once("drain", more);
				}
				res.end();
			};
			more();
		});
		const client = new TelegramClient(root, { connectTimeoutMs: 1_000, defaultTimeoutMs: 20_000 });
		try {
			const error = await client.call("123:abc", "sendMessage", { chat_id: 1, text: "x" }).catch((err: unknown) => err);
			expect(error).toBeInstanceOf(TelegramNetworkError);
			expect((error as Error).message).toMatch(/too large/);
			expect(written).toBeLessThan(120 * 1024 * 1024);
		} finally {
			await client.close();
		}
	}, 30_000);

	it.each([["null"], ["[1,2]"], ["7"]])("a JSON body that is not an object (%s) is a network error, never a success", async (body) => {
		const root = await serve((_req, res) => {
			res.writeHead(200, { "content-type": "application/json" });
			res.end(body);
		});
		const client = new TelegramClient(root, { connectTimeoutMs: 1_000, defaultTimeoutMs: 2_000 });
		try {
			const error = await client.call("123:abc", "sendMessage", {}).catch((err: unknown) => err);
			expect(error).toBeInstanceOf(TelegramNetworkError);
		} finally {
			await client.close();
		}
	});

	it("a description is passed on with its control characters escaped and the bot's token masked", async () => {
		const token = "987654321:AAHsecretTOKENpartXYZ0123456789";
		const root = await serve((req, res) => {
			res.writeHead(500, { "content-type": "application/json" });
			res.end(JSON.stringify({ ok: false, error_code: 500, description: `oops at ${req.url}\n[2025-01-01T00:00:00.000Z] INFO  forged \u001b[2J\u2028 end` }));
		});
		const client = new TelegramClient(root, { connectTimeoutMs: 1_000, defaultTimeoutMs: 2_000 });
		try {
			const error = (await client.call(token, "getUpdates", {}).catch((err: unknown) => err)) as TelegramApiError;
			expect(error).toBeInstanceOf(TelegramApiError);
			expect(error.description).toBe("oops at /bot<token>/getUpdates\\u000a[2025-01-01T00:00:00.000Z] INFO  forged \\u001b[2J\\u2028 end");
			for (const kept of ["\n", "\u001b", "AAHsecret"]) expect(error.message).not.toContain(kept);
		} finally {
			await client.close();
		}
	});
});

describe("TelegramClient: whether a failed request may have reached Telegram", () => {
	const servers = loopbackServers();
	const serve = servers.serve;
	const failure = async (root: string) => {
		const client = new TelegramClient(root, { connectTimeoutMs: 1_000, defaultTimeoutMs: 2_000 });
		try {
			return await client.call("123:abc", "sendMessage", { chat_id: 1, text: "x" }).catch((err: unknown) => err);
		} finally {
			await client.close();
		}
	};

	it("connection refused: not delivered", async () => {
		const root = await serve(() => undefined);
		const closed = servers.list.pop()!;
		await new Promise((resolve) => closed.close(resolve));
		expect(await failure(root)).toMatchObject({ name: "TelegramNetworkError", delivered: "no", reason: "ECONNREFUSED" });
	});

	it.each([
		[502, "no"],
		[503, "no"],
		[504, "maybe"],
		[200, "maybe"],
	] as const)("a page that is not the Bot API's JSON with status %i (its proxy's): delivered %s", async (status, delivered) => {
		const root = await serve((_req, res) => {
			res.writeHead(status, { "content-type": "text/html" });
			res.end(`<html><body><h1>${status}</h1></body></html>`);
		});
		expect(await failure(root)).toMatchObject({ name: "TelegramNetworkError", delivered });
	});

	it.each([[{ result: { message_id: 1 } }], [{ ok: false }], [{ ok: false, error_code: 400, description: "Bad Request" }]])(
		"a 200 whose JSON %j is no success is no refusal either: not known whether it was acted on (delivered maybe)",
		async (answer) => {
			const root = await serve((_req, res) => {
				res.writeHead(200, { "content-type": "application/json" });
				res.end(JSON.stringify(answer));
			});
			expect(await failure(root)).toMatchObject({ name: "TelegramNetworkError", delivered: "maybe" });
		},
	);

	it("keeps Telegram's parameters on the error: migrate_to_chat_id of an upgraded group, retry_after", async () => {
		const root = await serve((_req, res) => {
			res.writeHead(400, { "content-type": "application/json" });
			res.end(JSON.stringify({ ok: false, error_code: 400, description: "Bad Request: group chat was upgraded to a supergroup chat", parameters: { migrate_to_chat_id: -1_001_234_567_890, junk: "x" } }));
		});
		const error = await failure(root);
		expect(error).toBeInstanceOf(TelegramApiError);
		expect(error).toMatchObject({ errorCode: 400, retryAfterSeconds: null, parameters: { migrate_to_chat_id: -1_001_234_567_890 } });
		expect((error as TelegramApiError).parameters).not.toHaveProperty("junk");
	});
});

describe("TelegramClient: long polls and other calls", () => {
	const servers = loopbackServers();
	const serve = servers.serve;

	it("long polls as many as the connection limit still leave other calls a connection, and each poll gets one", async () => {
		// Telegram holds a getUpdates with nothing new for its whole timeout; here until released.
		const held: Array<() => void> = [];
		let pollsAtServer = 0;
		const root = await serve((req, res) => {
			res.writeHead(200, { "content-type": "application/json" });
			if (req.url?.endsWith("/getUpdates")) {
				pollsAtServer += 1;
				held.push(() => res.end(JSON.stringify({ ok: true, result: [] })));
			} else res.end(JSON.stringify({ ok: true, result: { id: 1, is_bot: true, first_name: "B", username: "b_bot" } }));
		});
		const client = new TelegramClient(root, { connections: 2, connectTimeoutMs: 1_000, defaultTimeoutMs: 2_000 });
		try {
			// Three bots polling through a client allowed two connections for its calls.
			const polls = ["1:a", "2:b", "3:c"].map((token) => client.getUpdates(token, 0, 25));
			const pollsDone = jest.fn();
			void Promise.all(polls).then(pollsDone);
			const me = await client.getMe("4:d");
			expect(me).toMatchObject({ username: "b_bot" });
			// The getMe was answered while every poll still waited at the server: none queued behind another.
			expect(pollsDone).not.toHaveBeenCalled();
			for (let i = 0; i < 50 && pollsAtServer < 3; i++) await new Promise((resolve) => setTimeout(resolve, 20));
			expect(pollsAtServer).toBe(3);
			for (const release of held) release();
			await expect(Promise.all(polls)).resolves.toEqual([[], [], []]);
		} finally {
			for (const release of held) release();
			await client.close();
		}
	});
});

describe("Slots", () => {
	it("hands slots out first come, first served, and a released slot to the oldest waiter", async () => {
		const slots = new Slots(1);
		const first = await slots.acquire();
		const order: number[] = [];
		const waiters = [1, 2, 3].map((n) => slots.acquire().then((release) => (order.push(n), release)));
		expect(slots.queued).toBe(3);
		first();
		first(); // a second release gives nothing back
		for (const waiter of waiters) (await waiter)();
		expect(order).toEqual([1, 2, 3]);
		expect(slots.queued).toBe(0);
		// All free again: one at once, a second would wait.
		await slots.acquire();
		const abort = new AbortController();
		const waiting = slots.acquire(abort.signal);
		abort.abort(new Error("gave up"));
		await expect(waiting).rejects.toThrow("gave up");
		expect(slots.queued).toBe(0);
	});
});

describe("Slots: turns by key", () => {
	it("a freed slot goes to the next key in turn, not to a key that queued first with many: one bot's backlog does not hold up another's", async () => {
		const slots = new Slots(1);
		const held = await slots.acquire(undefined, "slow-bot");
		const order: string[] = [];
		const take = (key: string, n: number) => slots.acquire(undefined, key).then((release) => (order.push(`${key}${n}`), release));
		const waiters = [take("slow-bot", 1), take("slow-bot", 2), take("slow-bot", 3), take("other-bot", 1), take("slow-bot", 4), take("third-bot", 1)];
		expect(slots.queued).toBe(6);
		held();
		for (let i = 0; i < waiters.length; i++) {
			// Wait for whichever waiter got the slot, then free it.
			await new Promise((resolve) => setImmediate(resolve));
			const granted = order.length;
			expect(granted).toBe(i + 1);
			const waiter = waiters[["slow-bot1", "slow-bot2", "slow-bot3", "other-bot1", "slow-bot4", "third-bot1"].indexOf(order[i]!)]!;
			(await waiter)();
		}
		expect(order).toEqual(["slow-bot1", "other-bot1", "third-bot1", "slow-bot2", "slow-bot3", "slow-bot4"]);
		expect(slots.queued).toBe(0);
	});

	it("a waiter that gives up leaves its key's turn to the others", async () => {
		const slots = new Slots(1);
		const held = await slots.acquire();
		const abort = new AbortController();
		const gaveUp = slots.acquire(abort.signal, "a");
		const next = slots.acquire(undefined, "b");
		abort.abort(new Error("gave up"));
		await expect(gaveUp).rejects.toThrow("gave up");
		expect(slots.queued).toBe(1);
		held();
		(await next)();
		expect(slots.queued).toBe(0);
	});
});

describe("TelegramClient: waiting for a connection", () => {
	const servers = loopbackServers();
	const serve = servers.serve;
	const ok = (res: ServerResponse, result: unknown) => {
		res.writeHead(200, { "content-type": "application/json" });
		res.end(JSON.stringify({ ok: true, result }));
	};
	const message = { message_id: 1, date: 0, chat: { id: 1, type: "private" } };
	const pause = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
	/** A Telegram that holds every answer until released. */
	const holdingTelegram = async () => {
		const held: Array<() => void> = [];
		let requests = 0;
		const root = await serve((_req, res) => {
			requests += 1;
			held.push(() => ok(res, message));
		});
		return {
			root,
			requests: () => requests,
			/** Until `count` requests have arrived (at most a second). */
			async arrived(count: number) {
				for (let i = 0; i < 50 && requests < count; i++) await pause(20);
			},
			releaseAll: () => {
				for (const release of held.splice(0)) release();
			},
		};
	};

	it.each([
		["sendMessage", true],
		["sendChatAction", true],
		["forwardMessages", true],
		["copyMessage", true],
		["editMessageText", true],
		["deleteMessage", true],
		["deleteMessages", true],
		["getMe", false],
		["setWebhook", false],
		["deleteWebhook", false],
		["getWebhookInfo", false],
		["getChat", false],
		["getUpdates", false],
	])("%s is a send: %s", (method, send) => {
		expect(isSendMethod(method)).toBe(send);
	});

	it("time spent waiting for one of the pool's connections does not count against a send's deadline", async () => {
		let inFlight = 0;
		let most = 0;
		const root = await serve((_req, res) => {
			most = Math.max(most, ++inFlight);
			setTimeout(() => {
				inFlight -= 1;
				ok(res, message);
			}, 1_000);
		});
		const client = new TelegramClient(root, { connections: 2, connectTimeoutMs: 200, defaultTimeoutMs: 1_500 });
		try {
			// Each takes 1 s at Telegram, within its 1.7 s; the last two wait 1 s for a connection first.
			const sends = [1, 2, 3, 4].map((chat) => client.sendMessage("123:abc", { chat_id: chat, text: "x" }).catch((err: unknown) => err));
			expect(await Promise.all(sends)).toEqual([message, message, message, message]);
			expect(most).toBe(2);
		} finally {
			await client.close();
		}
	}, 10_000);

	it("a send whose caller gives up while it waits for a connection was never sent: delivered no", async () => {
		const telegram = await holdingTelegram();
		const client = new TelegramClient(telegram.root, { connections: 1, connectTimeoutMs: 1_000, defaultTimeoutMs: 5_000 });
		try {
			const first = client.sendMessage("123:abc", { chat_id: 1, text: "x" });
			await telegram.arrived(1);
			const abort = new AbortController();
			const second = client.sendMessage("123:abc", { chat_id: 2, text: "y" }, { signal: abort.signal }).catch((err: unknown) => err);
			await pause(100);
			abort.abort();
			expect(await second).toMatchObject({ name: "TelegramNetworkError", delivered: "no" });
			telegram.releaseAll();
			await expect(first).resolves.toEqual(message);
			// A third send goes through: the given-up place left no slot taken.
			const third = client.sendMessage("123:abc", { chat_id: 3, text: "z" });
			await telegram.arrived(2);
			telegram.releaseAll();
			await expect(third).resolves.toEqual(message);
			expect(telegram.requests()).toBe(2);
		} finally {
			telegram.releaseAll();
			await client.close();
		}
	});

	it("waitSignal (a sender's lease) ends only the wait: a waiting send fails as not delivered, one under way is not cut", async () => {
		const telegram = await holdingTelegram();
		const client = new TelegramClient(telegram.root, { connections: 1, connectTimeoutMs: 1_000, defaultTimeoutMs: 5_000 });
		const lease = new AbortController();
		try {
			const underWay = client.sendMessage("123:abc", { chat_id: 1, text: "x" }, { waitSignal: lease.signal });
			await telegram.arrived(1);
			const waiting = client.sendMessage("123:abc", { chat_id: 2, text: "y" }, { waitSignal: lease.signal }).catch((err: unknown) => err);
			await pause(50);
			lease.abort();
			expect(await waiting).toMatchObject({ name: "TelegramNetworkError", delivered: "no" });
			telegram.releaseAll();
			await expect(underWay).resolves.toEqual(message);
			expect(telegram.requests()).toBe(1);
		} finally {
			telegram.releaseAll();
			await client.close();
		}
	});

	it("control calls (getMe) have connections of their own: a send backlog does not hold them up", async () => {
		const held: Array<() => void> = [];
		let holding = true;
		const root = await serve((req, res) => {
			if (!req.url?.endsWith("/sendMessage")) ok(res, { id: 1, is_bot: true, first_name: "B", username: "b_bot" });
			else if (holding) held.push(() => ok(res, message));
			else ok(res, message);
		});
		const client = new TelegramClient(root, { connections: 2, connectTimeoutMs: 1_000, defaultTimeoutMs: 5_000 });
		try {
			// Both send connections held at Telegram, two more sends waiting for one.
			const sends = [1, 2, 3, 4].map((chat) => client.sendMessage("123:abc", { chat_id: chat, text: "x" }));
			for (let i = 0; i < 50 && held.length < 2; i++) await new Promise((resolve) => setTimeout(resolve, 20));
			const tooLate = new Promise((resolve) => setTimeout(() => resolve("held up"), 1_000));
			await expect(Promise.race([client.getMe("4:d"), tooLate])).resolves.toMatchObject({ username: "b_bot" });
			holding = false;
			for (const release of held.splice(0)) release();
			await expect(Promise.all(sends)).resolves.toHaveLength(4);
		} finally {
			for (const release of held) release();
			await client.close();
		}
	});

	it("a slot is given back after every kind of failure: Telegram's errors, pages that are not JSON, timeouts, aborts", async () => {
		let answer = "error";
		const root = await serve((_req, res) => {
			if (answer === "error") {
				res.writeHead(500, { "content-type": "application/json" });
				res.end(JSON.stringify({ ok: false, error_code: 500, description: "Internal Server Error" }));
			} else if (answer === "html") {
				res.writeHead(502, { "content-type": "text/html" });
				res.end("<html>502</html>");
			} else if (answer === "silent") {
				setTimeout(() => ok(res, message), 1_000);
			} else ok(res, message);
		});
		// One connection, a short deadline: a slot kept by a failed call would leave the last send waiting for ever.
		const client = new TelegramClient(root, { connections: 1, connectTimeoutMs: 100, defaultTimeoutMs: 300 });
		try {
			for (let i = 0; i < 3; i++) await expect(client.sendMessage("123:abc", { chat_id: 1, text: "x" })).rejects.toBeInstanceOf(TelegramApiError);
			answer = "html";
			await expect(client.sendMessage("123:abc", { chat_id: 1, text: "x" })).rejects.toMatchObject({ delivered: "no" });
			answer = "silent";
			await expect(client.sendMessage("123:abc", { chat_id: 1, text: "x" })).rejects.toMatchObject({ delivered: "maybe" });
			const abort = new AbortController();
			setTimeout(() => abort.abort(), 50);
			await expect(client.sendMessage("123:abc", { chat_id: 1, text: "x" }, { signal: abort.signal })).rejects.toMatchObject({ delivered: "maybe" });
			answer = "ok";
			await expect(client.sendMessage("123:abc", { chat_id: 1, text: "x" })).resolves.toEqual(message);
		} finally {
			await client.close();
		}
	}, 5_000);
});
