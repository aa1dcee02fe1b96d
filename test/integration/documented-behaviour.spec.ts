/**
 * Behaviour the docs (../shared/API.md, README, docs/rest.md, docs/grpc.md) promise and the gateway
 * once did not keep: history paging by cursor alone, the login throttle in the rate-limit metric,
 * and a node that cannot listen on PORT failing to start.
 */
import { rmSync } from "node:fs";
import { createServer, type Server } from "node:net";
import { join } from "node:path";
import { ServiceBroker } from "moleculer";
import { createBrokerOptions } from "../../moleculer.config";
import { loadConfig } from "../../lib/config";
import { migrateUp } from "../../lib/db/migrator";
import { openRuntime } from "../../lib/runtime";
import { tempDir } from "../support/harness";
import { userWrites } from "../support/chat-helpers";
import { freePort } from "../support/processes";
import { pause } from "../support/realtime-clients";
import { ADMIN_PASSWORD, startTelegramGateway, type TelegramGateway } from "../support/telegram-gateway";

describe("documented behaviour", () => {
	let t: TelegramGateway;
	let bot: { id: number; token: string };
	let chatId: number;
	const telegramChat = 91_000;

	beforeAll(async () => {
		t = await startTelegramGateway({ mode: "polling", env: { GRPC_PORT: String(await freePort()) } });
		const added = await t.addBot({ username: "documented_bot" });
		bot = { id: added.bot.id, token: added.token };
		chatId = (await userWrites(t, bot.token, bot.id, { chat_id: telegramChat, text: "first" })).chatId;
	}, 60_000);
	afterAll(() => t?.stop());

	describe("docs/rest.md: history paging", () => {
		// docs/rest.md "Chats and messages": "`after_seq` switches to oldest first from just after it.
		// `next_cursor` continues in the same direction."; "Pagination": "pass `next_cursor` back as
		// `?cursor=` for the next page until it is `null`". The cursor only holds a seq, and the direction
		// comes from whether `after_seq` is in the query, so `?cursor=` alone turns an oldest-first walk
		// into a newest-first one that repeats rows already seen.
		it("GET /chats/:id/messages?after_seq=0: next_cursor alone continues oldest first", async () => {
			for (const text of ["page a", "page b", "page c"]) await userWrites(t, bot.token, bot.id, { chat_id: telegramChat, text });
			const first = await t.api<{ data: Array<{ seq: number }>; next_cursor: string | null }>("GET", `/chats/${chatId}/messages?after_seq=0&limit=2`);
			expect(first.status).toBe(200);
			const seen = first.body.data.map((m) => m.seq);
			expect(seen).toEqual([...seen].sort((a, b) => a - b));
			expect(first.body.next_cursor).toEqual(expect.any(String));
			const next = await t.api<{ data: Array<{ seq: number }> }>("GET", `/chats/${chatId}/messages?limit=2&cursor=${first.body.next_cursor}`);
			expect(next.status).toBe(200);
			const nextSeqs = next.body.data.map((m) => m.seq);
			expect(nextSeqs.length).toBeGreaterThan(0);
			// Same direction: every seq is after the last one of the first page, ascending.
			for (const seq of nextSeqs) expect(seq).toBeGreaterThan(seen[seen.length - 1]!);
			expect(nextSeqs).toEqual([...nextSeqs].sort((a, b) => a - b));
		});
	});

	describe("README metrics: tgw_rate_limited_total", () => {
		// README "Metrics and tracing": `tgw_rate_limited_total` counts "REST requests refused with 429".
		// A login refused by the login throttle (docs/rest.md: "429 RATE_LIMITED with Retry-After") is
		// such a request, but it is not counted under any label.
		it("counts a POST /auth/login refused with 429 by the login throttle", async () => {
			const total = async () => {
				const res = await fetch(`${t.baseUrl}/metrics`);
				const text = await res.text();
				return text
					.split("\n")
					.filter((line) => line.startsWith("tgw_rate_limited_total{"))
					.reduce((sum, line) => sum + Number(line.split(" ").pop()), 0);
			};
			const before = await total();
			let refused = 0;
			// At most 10 login attempts per minute from one address (docs/rest.md), whatever their outcome.
			for (let i = 0; i < 12; i++) {
				const res = await fetch(`${t.baseUrl}/api/v1/auth/login`, {
					method: "POST",
					headers: { "content-type": "application/json" },
					body: JSON.stringify({ username: "admin", password: ADMIN_PASSWORD }),
				});
				await res.text();
				if (res.status === 429) refused += 1;
			}
			expect(refused).toBeGreaterThan(0);
			expect((await total()) - before).toBe(refused);
		});
	});

	describe("a node whose PORT is taken", () => {
		// docs/grpc.md "Running it": "A node that cannot bind it [GRPC_PORT] fails to start", and so does
		// a node without api whose probe listener cannot bind PORT (lib/ops-server.ts). An api node whose
		// PORT is taken only logs "API: Server error ... EADDRINUSE" and its start never settles: the
		// process neither becomes ready nor exits (`PORT=<busy> npm start` hangs until killed).
		it("broker.start() rejects instead of hanging when the api service cannot listen on PORT", async () => {
			const blocker: Server = createServer();
			await new Promise<void>((resolve) => blocker.listen(0, "127.0.0.1", resolve));
			const busyPort = (blocker.address() as { port: number }).port;
			const dataDir = tempDir("tgw-busy-port-");
			const config = loadConfig({ LOG_LEVEL: "fatal", DATA_DIR: dataDir, HOST: "127.0.0.1", PORT: String(busyPort), GRPC_PORT: String(await freePort()) });
			const runtime = await openRuntime(config);
			await migrateUp(runtime.db);
			const broker = new ServiceBroker(createBrokerOptions(runtime, { nodeID: "busy-port", transporter: null, logger: false }));
			for (const name of ["api", "auth"]) broker.loadService(join(__dirname, "..", "..", "services", `${name}.service`));
			let timer: NodeJS.Timeout | undefined;
			const outcome = await Promise.race([
				broker.start().then(
					() => "started",
					() => "rejected",
				),
				new Promise<string>((resolve) => (timer = setTimeout(() => resolve("still starting after 10 s"), 10_000))),
			]);
			clearTimeout(timer);
			await Promise.race([broker.stop().catch(() => undefined), pause(5_000)]);
			await runtime.close();
			blocker.close();
			rmSync(dataDir, { recursive: true, force: true });
			expect(outcome).toBe("rejected");
		}, 30_000);
	});
});
