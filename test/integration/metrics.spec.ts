/**
 * GET /metrics against a real gateway and the Telegram double: Prometheus text that parses, Moleculer's
 * own metrics next to the gateway's `tgw_` ones, counters that move by exactly what the test did
 * (Telegram pushes, duplicates and refusals, events, HTTP routes, webhook outcomes, 429s), gauges read
 * at scrape time (connections by transport, breaker states, the send queue), METRICS_TOKEN, the ops
 * server of a node without the api service, METRICS_ENABLED=false, and TRACING_EXPORTER=event.
 */
import * as grpc from "@grpc/grpc-js";
import { createServer } from "node:http";
import { join } from "node:path";
import { connect, type AddressInfo } from "node:net";
import { loadSync } from "@grpc/proto-loader";
import { startOpsServer } from "../../lib/ops-server";
import { createKey } from "../support/auth";
import { userWrites, type MessageBody } from "../support/chat-helpers";
import { http, startTestGateway } from "../support/harness";
import { freePort } from "../support/processes";
import { parseExposition, samplesOf, valueOf, type Exposition } from "../support/prometheus-text";
import { connectIo, connectWs } from "../support/realtime-clients";
import { always, createWebhook, deactivateAllWebhooks, eventually, ok, startReceiver, waitForDeliveries, type Receiver } from "../support/receivers";
import { startTelegramGateway, type TelegramGateway } from "../support/telegram-gateway";

const TOKEN = "metrics-token-for-tests-0123456789";
const TEXT_FORMAT = /^text\/plain; version=0\.0\.4/;
const proto = loadSync(join(__dirname, "..", "..", "proto", "gateway.proto"), { keepCase: true, longs: Number, enums: String, defaults: true, oneofs: true });
const streamMessages = (proto["gateway.v1.MessageService"] as grpc.ServiceDefinition).StreamMessages as grpc.MethodDefinition<object, object>;

describe("GET /metrics", () => {
	let t: TelegramGateway;
	let grpcPort: number;
	let bot: { id: number; token: string; path: string; secret: string };
	const receivers: Receiver[] = [];

	const scrape = async (): Promise<Exposition> => {
		const res = await http(t.baseUrl, "GET", "/metrics", { headers: { authorization: `Bearer ${TOKEN}` } });
		if (res.status !== 200) throw new Error(`GET /metrics answered ${res.status}: ${res.text}`);
		return parseExposition(res.text);
	};
	const push = (body: object, secret = bot.secret) =>
		fetch(`${t.baseUrl}/api/v1/telegram/webhook/${bot.path}`, {
			method: "POST",
			headers: { "content-type": "application/json", "x-telegram-bot-api-secret-token": secret },
			body: JSON.stringify(body),
		});
	const eventsOfType = (type: string) => t.events.filter((e) => e.type === type).length;

	beforeAll(async () => {
		grpcPort = await freePort();
		t = await startTelegramGateway({ mode: "webhook", env: { METRICS_TOKEN: TOKEN, GRPC_PORT: String(grpcPort), LOG_LEVEL: "warn" } });
		const added = await t.addBot({ username: "metrics_bot" });
		bot = { id: added.bot.id, token: added.token, path: added.bot.webhook_url!.split("/").pop()!, secret: t.telegram.bot(added.token).webhook!.secret_token! };
	}, 60_000);
	afterAll(async () => {
		await Promise.all(receivers.map((r) => r.close()));
		await t.stop();
	});

	describe("METRICS_TOKEN", () => {
		it.each([
			["no Authorization header", {}],
			["a wrong token", { authorization: "Bearer not-the-token" }],
			["the token with one character more", { authorization: `Bearer ${TOKEN}x` }],
			["the token as Basic credentials", { authorization: `Basic ${TOKEN}` }],
			["the token without a scheme", { authorization: TOKEN }],
		])("refuses %s with 401 in the API's error format", async (_what, headers: Record<string, string>) => {
			const res = await http<{ error: { code: string; message: string } }>(t.baseUrl, "GET", "/metrics", { headers });
			expect(res.status).toBe(401);
			expect(res.headers.get("www-authenticate")).toMatch(/^Bearer/);
			expect(res.body.error.code).toBe("UNAUTHORIZED");
			expect(res.text).not.toContain("tgw_");
		});

		it("answers the right token with Prometheus text: Moleculer's metrics and the gateway's, labelled with the node", async () => {
			const res = await http(t.baseUrl, "GET", "/metrics", { headers: { authorization: `bearer ${TOKEN}` } });
			expect(res.status).toBe(200);
			expect(res.headers.get("content-type")).toMatch(TEXT_FORMAT);
			const metrics = parseExposition(res.text);
			expect(metrics.types.get("moleculer_request_total")).toBe("counter");
			expect(metrics.types.get("tgw_http_requests_total")).toBe("counter");
			expect(metrics.types.get("tgw_live_connections")).toBe("gauge");
			// The command line is not shown (it may carry what an open /metrics should not).
			expect(metrics.types.has("process_arguments")).toBe(false);
			expect(metrics.types.get("process_pid")).toBeDefined();
			for (const sample of metrics.samples) expect(sample.labels).toMatchObject({ namespace: "tgw", nodeID: t.gw.broker.nodeID });
		});
	});

	it("counts pushes whose body the receiver refuses before ingest: malformed JSON or no object, too large, another type", async () => {
		const before = await scrape();
		const raw = (body: string, type = "application/json") =>
			fetch(`${t.baseUrl}/api/v1/telegram/webhook/${bot.path}`, { method: "POST", headers: { "content-type": type, "x-telegram-bot-api-secret-token": bot.secret }, body });
		expect((await raw('{"update_id":')).status).toBe(400);
		expect((await raw("[1, 2]")).status).toBe(400);
		expect((await raw('"an update"')).status).toBe(400);
		expect((await raw(JSON.stringify({ update_id: 1, message: { text: "x".repeat(1_100_000) } }))).status).toBe(413);
		expect((await raw("update_id=1", "application/x-www-form-urlencoded")).status).toBe(415);
		// A sender that hangs up half-way through its body is not counted: nothing was refused.
		const url = new URL(t.baseUrl);
		await new Promise<void>((resolve) => {
			const socket = connect(Number(url.port), url.hostname, () => {
				socket.write(`POST /api/v1/telegram/webhook/${bot.path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nX-Telegram-Bot-Api-Secret-Token: ${bot.secret}\r\nContent-Length: 500\r\n\r\n{"update_id":`);
				setTimeout(() => socket.destroy(), 300);
			});
			socket.on("close", () => resolve());
		});
		await new Promise((r) => setTimeout(r, 200));
		const after = await scrape();
		const delta = (labels: Record<string, string>) => valueOf(after, "tgw_telegram_updates_rejected_total", labels) - valueOf(before, "tgw_telegram_updates_rejected_total", labels);
		expect([delta({ reason: "malformed" }), delta({ reason: "too_large" }), delta({ reason: "unsupported_media_type" })]).toEqual([3, 1, 1]);
	});

	it("counts Telegram updates received, duplicated and rejected, the events they emitted, and their HTTP answers", async () => {
		const before = await scrape();
		const eventsBefore = eventsOfType("new_message");
		const update = { update_id: 777_001, message: { message_id: 1, date: 1_700_000_000, chat: { id: 4242, type: "private", first_name: "Mo" }, from: { id: 4242, is_bot: false, first_name: "Mo" }, text: "count me" } };
		expect((await push(update)).status).toBe(200);
		expect((await push(update)).status).toBe(200);
		expect((await push({ message: { text: "no update_id" } })).status).toBe(400);
		expect((await push(update, "wrong-secret")).status).toBe(401);
		await eventually(() => eventsOfType("new_message") === eventsBefore + 1, 5_000, "the new_message event");

		const after = await scrape();
		const delta = (name: string, labels: Record<string, string> = {}) => valueOf(after, name, labels) - valueOf(before, name, labels);
		expect(delta("tgw_telegram_updates_received_total")).toBe(2);
		expect(delta("tgw_telegram_updates_duplicate_total")).toBe(1);
		expect(delta("tgw_telegram_updates_rejected_total", { reason: "malformed" })).toBe(1);
		expect(delta("tgw_telegram_updates_rejected_total", { reason: "bad_secret" })).toBe(1);
		expect(delta("tgw_telegram_updates_rejected_total")).toBe(2);
		expect(delta("tgw_events_emitted_total", { type: "new_message" })).toBe(1);
		const route = { method: "POST", route: "/api/v1/telegram/webhook/:path" };
		expect(delta("tgw_http_requests_total", { ...route, status: "200" })).toBe(2);
		expect(delta("tgw_http_requests_total", { ...route, status: "400" })).toBe(1);
		expect(delta("tgw_http_requests_total", { ...route, status: "401" })).toBe(1);
		expect(delta("tgw_http_request_duration_seconds_count", route)).toBe(4);
		// Routes are templates: no label carries a raw path.
		expect(samplesOf(after, "tgw_http_requests_total").filter((s) => s.labels.route!.includes(bot.path))).toEqual([]);
	});

	it("shows a message in the send queue while Telegram takes its time, and the outgoing_message it emitted", async () => {
		const { chatId } = await userWrites(t, bot.token, bot.id, { chat_id: 5151, text: "please answer" });
		const eventsBefore = eventsOfType("outgoing_message");
		const before = await scrape();
		expect(valueOf(before, "tgw_send_queue_depth")).toBe(0);
		t.telegram.failNext("sendMessage", { delayMs: 3_000 });
		let settled = false;
		const sending = t.api<MessageBody>("POST", `/chats/${chatId}/messages`, { text: "slow answer" }).finally(() => (settled = true));
		let sawQueued = false;
		await eventually(async () => (sawQueued = valueOf(await scrape(), "tgw_send_queue_depth") === 1) || settled, 10_000, "a queued message");
		expect(sawQueued).toBe(true);
		expect((await sending).status).toBe(201);
		await eventually(async () => valueOf(await scrape(), "tgw_send_queue_depth") === 0, 5_000, "an empty queue");
		await eventually(() => eventsOfType("outgoing_message") === eventsBefore + 1, 5_000, "the outgoing_message event");
		const after = await scrape();
		expect(valueOf(after, "tgw_events_emitted_total", { type: "outgoing_message" }) - valueOf(before, "tgw_events_emitted_total", { type: "outgoing_message" })).toBe(1);
		const posted = { method: "POST", route: "/api/v1/chats/:id/messages", status: "201" };
		expect(valueOf(after, "tgw_http_requests_total", posted) - valueOf(before, "tgw_http_requests_total", posted)).toBe(1);
	});

	it("counts open socket.io, WebSocket and gRPC stream connections, and forgets them when they close", async () => {
		const connections = async () => {
			const metrics = await scrape();
			return ["socketio", "websocket", "grpc"].map((transport) => valueOf(metrics, "tgw_live_connections", { transport }));
		};
		expect(await connections()).toEqual([0, 0, 0]);
		const io1 = await connectIo(t.baseUrl, { token: t.adminToken });
		const io2 = await connectIo(t.baseUrl, { token: t.adminToken });
		const ws = await connectWs(t.baseUrl, `?token=${encodeURIComponent(t.adminToken)}`);
		const client = new grpc.Client(`127.0.0.1:${grpcPort}`, grpc.credentials.createInsecure());
		const md = new grpc.Metadata();
		md.set("authorization", `Bearer ${t.adminToken}`);
		const call = client.makeServerStreamRequest(streamMessages.path, streamMessages.requestSerialize, streamMessages.responseDeserialize, {}, md);
		call.on("error", () => undefined);
		try {
			await eventually(async () => (await connections()).join() === "2,1,1", 5_000, "2 socket.io, 1 WebSocket and 1 gRPC connection");
		} finally {
			io1.close();
			io2.close();
			ws.close();
			call.cancel();
		}
		await eventually(async () => (await connections()).join() === "0,0,0", 5_000, "no connection left");
		client.close();
	});

	it("counts webhook delivery outcomes, and endpoints by breaker state (no label per URL)", async () => {
		const good = await startReceiver(ok());
		const bad = await startReceiver(always(500));
		receivers.push(good, bad);
		const before = await scrape();
		const goodHook = await createWebhook(t, { url: good.url, scope: "bot", bot_id: bot.id });
		const badHook = await createWebhook(t, { url: bad.url, scope: "bot", bot_id: bot.id });
		t.telegram.userSends(bot.token, { chat_id: 6161, text: "to both webhooks" });
		await waitForDeliveries(t, goodHook.id, (log) => log.some((d) => d.status === "succeeded"), 10_000, "a success");
		await waitForDeliveries(t, badHook.id, (log) => log.some((d) => d.attempts >= 1), 10_000, "a failed attempt");

		const after = await scrape();
		const delta = (outcome: string) => valueOf(after, "tgw_webhook_deliveries_total", { outcome }) - valueOf(before, "tgw_webhook_deliveries_total", { outcome });
		expect(delta("succeeded")).toBe(1);
		expect(delta("retry")).toBe(1);
		expect(delta("dead") + delta("gone")).toBe(0);
		const breakers = async () => {
			const metrics = await scrape();
			expect(samplesOf(metrics, "tgw_webhook_breakers").every((s) => Object.keys(s.labels).sort().join() === "namespace,nodeID,state")).toBe(true);
			return ["closed", "open", "half_open"].map((state) => valueOf(metrics, "tgw_webhook_breakers", { state })).join();
		};
		expect(await breakers()).toBe("2,0,0");
		await t.gw.runtime.state.set(`breaker:${badHook.id}:open_until`, String(Date.now() + 60_000), 60_000);
		expect(await breakers()).toBe("1,1,0");
		await t.gw.runtime.state.set(`breaker:${badHook.id}:open_until`, String(Date.now() - 1_000), 60_000);
		expect(await breakers()).toBe("1,0,1");
		await deactivateAllWebhooks(t);
		expect(await breakers()).toBe("0,0,0");
	});

	it("counts every 429 of the per-principal rate limit", async () => {
		const key = await createKey(t.baseUrl, t.adminToken, { rate_limit: 1 });
		const before = await scrape();
		const statuses: number[] = [];
		for (let i = 0; i < 4; i++) statuses.push((await t.api("GET", "/auth/me", undefined, key.key)).status);
		const refused = statuses.filter((s) => s === 429).length;
		expect(refused).toBeGreaterThanOrEqual(1);
		const after = await scrape();
		expect(valueOf(after, "tgw_rate_limited_total", { limit: "principal" }) - valueOf(before, "tgw_rate_limited_total", { limit: "principal" })).toBe(refused);
		expect(valueOf(after, "tgw_http_requests_total", { method: "GET", route: "/api/v1/auth/me", status: "429" })).toBe(refused);
	});
});

describe("metrics on other nodes", () => {
	it("a node without the api service serves /metrics (open without METRICS_TOKEN) from its ops server", async () => {
		const gw = await startTestGateway({ nodes: [["auth", "bots", "chats", "ingest", "broker", "delivery"]], env: { LOG_LEVEL: "warn" } });
		const ops = await startOpsServer(gw.broker, gw.runtime);
		try {
			const base = `http://127.0.0.1:${(ops.server.address() as AddressInfo).port}`;
			await gw.broker.call("broker.head");
			const res = await http(base, "GET", "/metrics");
			expect(res.status).toBe(200);
			expect(res.headers.get("content-type")).toMatch(TEXT_FORMAT);
			const metrics = parseExposition(res.text);
			expect(valueOf(metrics, "moleculer_request_total", { action: "broker.head" })).toBeGreaterThanOrEqual(1);
			expect(valueOf(metrics, "tgw_send_queue_depth", { nodeID: gw.broker.nodeID })).toBe(0);
			expect(samplesOf(metrics, "tgw_webhook_breakers")).toHaveLength(3);
			// Gauges of services this node does not run are absent, not zero.
			expect(metrics.types.has("tgw_live_connections")).toBe(false);
			expect((await http(base, "GET", "/health")).status).toBe(200);
		} finally {
			await ops.close();
			await gw.stop();
		}
	});

	it("the ops server applies METRICS_TOKEN too", async () => {
		const gw = await startTestGateway({ nodes: [["auth", "broker"]], env: { LOG_LEVEL: "warn", METRICS_TOKEN: TOKEN } });
		const ops = await startOpsServer(gw.broker, gw.runtime);
		try {
			const base = `http://127.0.0.1:${(ops.server.address() as AddressInfo).port}`;
			expect((await http(base, "GET", "/metrics")).status).toBe(401);
			expect((await http(base, "GET", "/metrics", { headers: { authorization: "Bearer nope" } })).status).toBe(401);
			expect((await http(base, "GET", "/metrics", { headers: { authorization: `Bearer ${TOKEN}` } })).status).toBe(200);
		} finally {
			await ops.close();
			await gw.stop();
		}
	});

	it("METRICS_ENABLED=false turns Moleculer's metrics off and /metrics answers 404", async () => {
		const gw = await startTestGateway({ nodes: [["api", "auth"]], env: { LOG_LEVEL: "warn", METRICS_ENABLED: "false" } });
		try {
			expect(gw.broker.isMetricsEnabled()).toBe(false);
			const res = await http<{ error: { code: string; message: string } }>(gw.baseUrl, "GET", "/metrics");
			expect(res.status).toBe(404);
			expect(res.body.error).toMatchObject({ code: "NOT_FOUND", message: expect.stringContaining("METRICS_ENABLED") });
		} finally {
			await gw.stop();
		}
	});

	it("TRACING_EXPORTER=zipkin uploads the spans still queued when the node stops (Moleculer's exporter dropped them)", async () => {
		const uploaded: Array<{ name: string }> = [];
		const zipkin = createServer((req, res) => {
			let body = "";
			req.on("data", (chunk: Buffer) => (body += chunk.toString()));
			req.on("end", () => {
				if (req.method === "POST" && req.url === "/api/v2/spans") uploaded.push(...(JSON.parse(body) as Array<{ name: string }>));
				res.writeHead(202).end();
			});
		});
		await new Promise<void>((done) => zipkin.listen(0, "127.0.0.1", done));
		try {
			const gw = await startTestGateway({
				nodes: [["api", "auth"]],
				env: { LOG_LEVEL: "warn", TRACING_EXPORTER: "zipkin", TRACING_ENDPOINT: `http://127.0.0.1:${(zipkin.address() as AddressInfo).port}` },
			});
			expect((await http(gw.baseUrl, "GET", "/health")).status).toBe(200);
			// Stopped well inside the exporter's 5 s interval: only the final upload can carry the span.
			await gw.stop();
			expect(uploaded.map((s) => s.name)).toEqual(expect.arrayContaining([expect.stringContaining("api.health")]));
		} finally {
			await new Promise((done) => zipkin.close(done));
		}
	}, 15_000);

	it("the final Zipkin upload sends TRACING_ENDPOINT's user and password as Basic authorization, and never logs them", async () => {
		const uploads: Array<{ authorization?: string; spans: number }> = [];
		const zipkin = createServer((req, res) => {
			let body = "";
			req.on("data", (chunk: Buffer) => (body += chunk.toString()));
			req.on("end", () => {
				if (req.method === "POST" && req.url === "/api/v2/spans") uploads.push({ authorization: req.headers.authorization, spans: (JSON.parse(body) as unknown[]).length });
				res.writeHead(202).end();
			});
		});
		await new Promise<void>((done) => zipkin.listen(0, "127.0.0.1", done));
		const logged: string[] = [];
		const warn = jest.spyOn(process.stdout, "write").mockImplementation(((chunk: string | Uint8Array) => {
			logged.push(String(chunk));
			return true;
		}) as typeof process.stdout.write);
		try {
			const endpoint = `http://zuser:Zipkin-Pass-SECRET@127.0.0.1:${(zipkin.address() as AddressInfo).port}`;
			const gw = await startTestGateway({ nodes: [["api", "auth"]], env: { LOG_LEVEL: "warn", TRACING_EXPORTER: "zipkin", TRACING_ENDPOINT: endpoint } });
			expect((await http(gw.baseUrl, "GET", "/health")).status).toBe(200);
			await gw.stop();
			expect(uploads.length).toBeGreaterThan(0);
			expect(uploads.at(-1)!.authorization).toBe(`Basic ${Buffer.from("zuser:Zipkin-Pass-SECRET").toString("base64")}`);
		} finally {
			warn.mockRestore();
			await new Promise((done) => zipkin.close(done));
		}
		expect(logged.join("")).not.toContain("Zipkin-Pass-SECRET");
	}, 15_000);

	it("spans carry action params with passwords, tokens, keys and credentials replaced", async () => {
		const spans: Array<{ name: string; tags: Record<string, unknown> }> = [];
		const password = "admin-password-seen-only-by-auth";
		const gw = await startTestGateway({
			nodes: [["api", "auth"]],
			env: { LOG_LEVEL: "warn", TRACING_EXPORTER: "event", ADMIN_PASSWORD: password },
			services: [{ name: "span-sink", events: { "$tracing.spans"(ctx: { params: typeof spans }) { spans.push(...ctx.params); } } }],
		});
		try {
			const login = await http<{ access_token: string; refresh_token: string }>(gw.baseUrl, "POST", "/api/v1/auth/login", { body: { username: "admin", password } });
			expect(login.status).toBe(200);
			const key = await createKey(gw.baseUrl, login.body.access_token);
			expect((await http(gw.baseUrl, "GET", "/api/v1/auth/me", { headers: { "x-api-key": key.key } })).status).toBe(200);
			expect((await http(gw.baseUrl, "GET", `/api/v1/auth/me?api_key=${key.key}`)).status).toBe(200);
			expect((await http(gw.baseUrl, "POST", "/api/v1/auth/refresh", { body: { refresh_token: login.body.refresh_token } })).status).toBe(200);
			// A bot's webhook path is as good as half its credentials: no span shows it.
			const webhookPath = "ab12".repeat(16);
			await http(gw.baseUrl, "POST", `/api/v1/telegram/webhook/${webhookPath}`, { body: { update_id: 1 } });
			// (No bot has this path: the push is refused before its body, in the span of the request itself.)
			await eventually(() => ["auth.login", "auth.resolve", "auth.refresh", "POST /api/v1/telegram/webhook/:path"].every((name) => spans.some((s) => s.name.includes(name))), 8_000, "the spans of login, resolve, refresh and a push");
			const text = JSON.stringify(spans);
			for (const secret of [password, key.key, login.body.access_token, login.body.refresh_token, webhookPath]) expect(text).not.toContain(secret);
			const loginSpan = spans.find((s) => s.name.includes("auth.login"))!;
			// What is not secret is still there to debug with.
			expect(loginSpan.tags.params).toEqual({ username: "admin", password: "[redacted]" });
			expect(spans.find((s) => s.name.includes("auth.resolve"))!.tags.params).toEqual({ credential: "[redacted]" });
			// moleculer-web's request span showed the URL with its query.
			expect(spans.map((s) => s.name)).toContain("GET /api/v1/auth/me");
		} finally {
			await gw.stop();
		}
	}, 15_000);

	it("TRACING_EXPORTER=event publishes the spans of a REST request as $tracing.spans events", async () => {
		const spans: Array<{ name: string; traceID: string }> = [];
		const gw = await startTestGateway({
			nodes: [["api", "auth"]],
			env: { LOG_LEVEL: "warn", TRACING_EXPORTER: "event" },
			services: [{ name: "span-sink", events: { "$tracing.spans"(ctx: { params: Array<{ name: string; traceID: string }> }) { spans.push(...ctx.params); } } }],
		});
		try {
			expect((await http(gw.baseUrl, "GET", "/health")).status).toBe(200);
			// The exporter sends its batch every 5 s.
			await eventually(() => spans.some((s) => s.name.includes("api.health")), 8_000, "the span of api.health");
			const health = spans.find((s) => s.name.includes("api.health"))!;
			expect(spans.filter((s) => s.traceID === health.traceID).length).toBeGreaterThanOrEqual(2);
		} finally {
			await gw.stop();
		}
	}, 15_000);
});
