/**
 * The REST surface against API.md ("Conventions", "Shapes", the REST table) where it was found to
 * differ: OPTIONS never runs an action, history windows, Idempotency-Key across chats, public routes
 * and stray Authorization headers, what an API key may give a key it creates, the OpenAPI request
 * bodies, and X-Request-Id on the WebSocket refusals and the ops server of non-api nodes.
 */
import { createKey, createUser, errorFields, expectApiError } from "../support/auth";
import { rowCounts, sentWithText, userWrites, type MessageBody, type Page } from "../support/chat-helpers";
import { connect, type AddressInfo } from "node:net";
import { startOpsServer } from "../../lib/ops-server";
import { http, startTestGateway } from "../support/harness";
import { startTelegramGateway, ADMIN_PASSWORD, type TelegramGateway } from "../support/telegram-gateway";

type Json = Record<string, unknown>;

describe("REST contract", () => {
	let t: TelegramGateway;
	let bot: { id: number; token: string };
	let chat1: number;
	let chat2: number;

	beforeAll(async () => {
		t = await startTelegramGateway({ mode: "webhook" });
		const added = await t.addBot({ username: "rest_contract_bot" });
		bot = { id: added.bot.id, token: added.token };
		chat1 = (await userWrites(t, bot.token, bot.id, { chat_id: 7001, text: "hello from 7001" })).chatId;
		chat2 = (await userWrites(t, bot.token, bot.id, { chat_id: 7002, text: "hello from 7002" })).chatId;
	}, 60_000);
	afterAll(() => t.stop());

	const keyRow = (id: number) => t.gw.runtime.db.models.ApiKey.findByPk(id, { raw: true });

	describe("OPTIONS never runs an action (a CORS preflight must be safe)", () => {
		it("OPTIONS with Access-Control-Request-Method: DELETE does not revoke the API key", async () => {
			const created = await createKey(t.baseUrl, t.adminToken, { name: "preflight-delete" });
			const res = await http<Json>(t.baseUrl, "OPTIONS", `/api/v1/apikeys/${created.id}?api_key=${created.key}`, {
				headers: { "access-control-request-method": "DELETE", origin: "https://app.example" },
			});
			expectApiError(res, 404, "NOT_FOUND");
			expect((await keyRow(created.id))!.revoked_at).toBeNull();
			expect((await http<Json>(t.baseUrl, "GET", "/api/v1/auth/me", { headers: { "x-api-key": created.key } })).status).toBe(200);
		});

		it("OPTIONS with Access-Control-Request-Method: POST does not rotate the API key", async () => {
			const created = await createKey(t.baseUrl, t.adminToken, { name: "preflight-rotate" });
			const before = (await keyRow(created.id))!;
			const res = await http<Json>(t.baseUrl, "OPTIONS", `/api/v1/apikeys/${created.id}/rotate?api_key=${created.key}`, {
				headers: { "access-control-request-method": "POST", origin: "https://app.example" },
			});
			expectApiError(res, 404, "NOT_FOUND");
			expect(res.text).not.toContain("tgw_");
			const after = (await keyRow(created.id))!;
			expect({ prefix: after.prefix, key_hash: after.key_hash }).toEqual({ prefix: before.prefix, key_hash: before.key_hash });
			expect((await http<Json>(t.baseUrl, "GET", "/api/v1/auth/me", { headers: { "x-api-key": created.key } })).status).toBe(200);
		});

		it("OPTIONS with Access-Control-Request-Method: DELETE does not delete a user", async () => {
			const victim = await createUser(t.gw, t.adminToken, ["viewer"]);
			const res = await http<Json>(t.baseUrl, "OPTIONS", `/api/v1/users/${victim.id}`, {
				headers: { authorization: `Bearer ${t.adminToken}`, "access-control-request-method": "DELETE" },
			});
			expectApiError(res, 404, "NOT_FOUND");
			expect(await t.gw.runtime.db.models.User.count({ where: { id: victim.id } })).toBe(1);
		});

		it("a bare OPTIONS is not answered as a GET (no list of chats in the body)", async () => {
			const res = await http<Json>(t.baseUrl, "OPTIONS", "/api/v1/chats", { headers: { authorization: `Bearer ${t.adminToken}` } });
			expectApiError(res, 404, "NOT_FOUND");
			expect(res.body).not.toHaveProperty("data");
		});
	});

	it("socket.io's HTTP polling answers carry X-Request-Id too, keeping a valid one", async () => {
		const res = await http<Json>(t.baseUrl, "GET", "/socket.io/?EIO=4&transport=polling", { headers: { "x-request-id": "poll-42" } });
		expect(res.status).toBe(200);
		expect(res.headers.get("x-request-id")).toBe("poll-42");
	});

	describe("HEAD", () => {
		it("is answered as GET without the body (load balancers probe with it)", async () => {
			for (const [path, headers] of [["/health", {}], ["/api/v1/chats", { authorization: `Bearer ${t.adminToken}` }]] as const) {
				const res = await http<Json>(t.baseUrl, "HEAD", path, { headers });
				expect({ path, status: res.status, body: res.text }).toEqual({ path, status: 200, body: "" });
				expect(res.headers.get("x-request-id")).toBeTruthy();
			}
			expectApiError(await http<Json>(t.baseUrl, "POST", "/api/v1/chats", { headers: { authorization: `Bearer ${t.adminToken}` } }), 404, "NOT_FOUND");
		});
	});

	describe("ids in paths and queries are plain decimal numbers", () => {
		it.each(["0x1", "1e0", "+1", "%201"])("GET /chats/%s is 400 naming id, not chat 1", async (id) => {
			const res = await t.api<Json>("GET", `/chats/${id}`);
			expectApiError(res, 400, "VALIDATION_ERROR");
			expect(errorFields(res)).toEqual(["id"]);
		});
	});

	describe("GET /chats/:id/messages", () => {
		it("after_seq and before_seq together give the messages strictly between them", async () => {
			const sent: MessageBody[] = [];
			for (let i = 1; i <= 4; i++) {
				const res = await t.api<MessageBody>("POST", `/chats/${chat1}/messages`, { text: `between-${i}` });
				expect(res.status).toBe(201);
				sent.push(res.body);
			}
			const seqs = sent.map((m) => m.seq!);
			const res = await t.api<Page<MessageBody>>("GET", `/chats/${chat1}/messages?after_seq=${seqs[0]}&before_seq=${seqs[3]}`);
			expect(res.status).toBe(200);
			// Oldest first, as with after_seq alone; only seqs[1] and seqs[2] lie strictly between.
			expect({ seqs: res.body.data.map((m) => m.seq), next_cursor: res.body.next_cursor }).toEqual({ seqs: [seqs[1], seqs[2]], next_cursor: null });
		});
	});

	describe("POST /chats/:id/messages: Idempotency-Key", () => {
		it("a key used again for another chat is 409 CONFLICT: nothing queued, Telegram gets the first message only", async () => {
			const key = `contract-idem-${Date.now()}`;
			const first = await t.api<MessageBody>("POST", `/chats/${chat1}/messages`, { text: "idem across chats" }, t.adminToken, { "idempotency-key": key });
			expect(first.status).toBe(201);
			const before = await rowCounts(t);
			const again = await t.api<MessageBody>("POST", `/chats/${chat2}/messages`, { text: "idem across chats" }, t.adminToken, { "idempotency-key": key });
			expectApiError(again, 409, "CONFLICT");
			expect(await rowCounts(t)).toEqual(before);
			expect(sentWithText(t, "idem across chats")).toHaveLength(1);
		});
	});

	describe("public routes ignore the Authorization header", () => {
		it.each([
			["an empty Bearer", "Bearer "],
			["another scheme", "Basic YWRtaW46YWRtaW4="],
		])("POST /auth/login with %s in Authorization still logs in (it needs no credential)", async (_name, header) => {
			const res = await http<Json>(t.baseUrl, "POST", "/api/v1/auth/login", {
				body: { username: "admin", password: ADMIN_PASSWORD },
				headers: { authorization: header, "x-forwarded-for": "10.77.0.1" },
			});
			expect(res.status).toBe(200);
			expect(res.body).toMatchObject({ token_type: "Bearer", access_token: expect.any(String), refresh_token: expect.any(String) });
		});
	});

	describe("POST /apikeys: expires_at", () => {
		it.each([
			["year 275760 as an ISO string", "+275760-09-13T00:00:00.000Z"],
			["the largest epoch milliseconds", 8_640_000_000_000_000],
			["year 10000 in epoch milliseconds", Date.UTC(10_000, 0, 1)],
		])("%s is 400 VALIDATION_ERROR naming expires_at (not an ISO-8601/RFC 3339 time; MySQL DATETIME ends at 9999), and no key is created", async (_name, expires) => {
			const before = await t.gw.runtime.db.models.ApiKey.count();
			const res = await t.api<Json>("POST", "/apikeys", { name: "far-future", expires_at: expires });
			expectApiError(res, 400, "VALIDATION_ERROR");
			expect(errorFields(res)).toEqual(["expires_at"]);
			expect(await t.gw.runtime.db.models.ApiKey.count()).toBe(before);
		});
	});

	describe("POST /apikeys with an API key: a key never holds more than whoever creates it", () => {
		const inAnHour = () => new Date(Date.now() + 3_600_000).toISOString().replace(/\.\d{3}Z$/, ".000Z");

		it("a key that expires makes keys that expire with it: without expires_at the new key gets its creator's", async () => {
			const expires = inAnHour();
			const parent = await createKey(t.baseUrl, t.adminToken, { name: "expiring-parent", expires_at: expires });
			const res = await t.api<Json>("POST", "/apikeys", { name: "child-of-expiring" }, parent.key);
			expect(res.status).toBe(201);
			expect(res.body.expires_at).toBe(expires);
		});

		it("an expires_at past its creator's is 400 VALIDATION_ERROR naming expires_at, and no key is created", async () => {
			const parent = await createKey(t.baseUrl, t.adminToken, { name: "expiring-parent-2", expires_at: inAnHour() });
			const before = await t.gw.runtime.db.models.ApiKey.count();
			const res = await t.api<Json>("POST", "/apikeys", { name: "outlives-parent", expires_at: "2099-01-01T00:00:00.000Z" }, parent.key);
			expectApiError(res, 400, "VALIDATION_ERROR");
			expect(errorFields(res)).toEqual(["expires_at"]);
			expect(await t.gw.runtime.db.models.ApiKey.count()).toBe(before);
		});

		it("a rate_limit above its creator's is 400 VALIDATION_ERROR naming rate_limit, and no key is created", async () => {
			const parent = await createKey(t.baseUrl, t.adminToken, { name: "limited-parent", rate_limit: 50 });
			const before = await t.gw.runtime.db.models.ApiKey.count();
			const res = await t.api<Json>("POST", "/apikeys", { name: "faster-than-parent", rate_limit: 100_000 }, parent.key);
			expectApiError(res, 400, "VALIDATION_ERROR");
			expect(errorFields(res)).toEqual(["rate_limit"]);
			expect(await t.gw.runtime.db.models.ApiKey.count()).toBe(before);
		});
	});

	describe("GET /api/openapi.json agrees with what the routes accept", () => {
		it("request bodies under /api/v1 list the form encoding the server accepts (API.md: `api_key` in a form body), and admit `api_key`", async () => {
			const doc = (await http<Json>(t.baseUrl, "GET", "/api/openapi.json")).body as { paths: Record<string, Record<string, { requestBody?: { content: Record<string, { schema: Json }> } }>> };
			const create = doc.paths["/api/v1/apikeys"]!.post!.requestBody!;
			// The server takes this very request (see auth-api-keys.spec.ts, "api_key in a form-encoded body").
			const raw = new URLSearchParams({ name: "openapi-form", api_key: (await createKey(t.baseUrl, t.adminToken, { name: "openapi-form-key" })).key }).toString();
			expect((await http<Json>(t.baseUrl, "POST", "/api/v1/apikeys", { raw, headers: { "content-type": "application/x-www-form-urlencoded" } })).status).toBe(201);
			expect(Object.keys(create.content).sort()).toEqual(["application/json", "application/x-www-form-urlencoded"]);
			// A client validating its JSON body against the document must be allowed to send api_key in it.
			const schema = create.content["application/json"]!.schema as { additionalProperties?: unknown; properties?: Json };
			expect(schema.additionalProperties === false ? Object.keys(schema.properties ?? {}) : ["api_key"]).toContain("api_key");
		});
	});

	describe("X-Request-Id on every response", () => {
		/** The raw HTTP answer to a WebSocket upgrade of /api/v1/ws with `query`. */
		function upgradeAnswer(query: string): Promise<string> {
			const { port } = new URL(t.baseUrl);
			return new Promise((resolve, reject) => {
				const socket = connect(Number(port), "127.0.0.1");
				let text = "";
				socket.setTimeout(5_000, () => socket.destroy(new Error(`no answer: ${text}`)));
				socket.on("data", (chunk) => (text += chunk.toString()));
				socket.on("end", () => resolve(text));
				socket.on("close", () => resolve(text));
				socket.on("error", reject);
				socket.write(
					`GET /api/v1/ws${query} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n` +
						"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
				);
			});
		}

		it("the 401 refusing a WebSocket upgrade with a bad credential carries X-Request-Id", async () => {
			const answer = await upgradeAnswer("?token=not-a-credential");
			const [head = "", body = ""] = answer.split("\r\n\r\n");
			expect(head.split("\r\n")[0]).toBe("HTTP/1.1 401 Unauthorized");
			expect(JSON.parse(body)).toMatchObject({ error: { code: "UNAUTHORIZED" } });
			expect(head).toMatch(/\r\nX-Request-Id: [A-Za-z0-9._:-]{1,128}(\r\n|$)/i);
		});
	});
});

describe("the ops server of nodes without the api service (/health, /ready, /metrics)", () => {
	it("every answer carries X-Request-Id, and a method it does not serve is 404 NOT_FOUND as on an api node", async () => {
		const gw = await startTestGateway({ nodes: [["auth", "broker"]] });
		const ops = await startOpsServer(gw.broker, gw.runtime);
		try {
			const base = `http://127.0.0.1:${(ops.server.address() as AddressInfo).port}`;
			for (const path of ["/health", "/ready", "/metrics", "/nope"]) {
				const res = await http(base, "GET", path);
				expect({ path, status: res.status, requestId: res.headers.get("x-request-id") }).toEqual({ path, status: path === "/nope" ? 404 : 200, requestId: expect.stringMatching(/^[A-Za-z0-9._:-]{1,128}$/) });
			}
			const kept = await http(base, "GET", "/health", { headers: { "x-request-id": "ops-trace-1" } });
			expect(kept.headers.get("x-request-id")).toBe("ops-trace-1");
			const posted = await http(base, "POST", "/health", { body: {} });
			expectApiError(posted, 404, "NOT_FOUND");
			expect(posted.headers.get("x-request-id")).toMatch(/^[A-Za-z0-9._:-]{1,128}$/);
		} finally {
			await ops.close();
			await gw.stop();
		}
	});

	it("close() (an api node's listener making way for the API) does not wait on a client that keeps its connection busy", async () => {
		const gw = await startTestGateway({ nodes: [["auth", "broker"]] });
		const ops = await startOpsServer(gw.broker, gw.runtime, "migrating");
		const socket = connect((ops.server.address() as AddressInfo).port, "127.0.0.1");
		let received = "";
		socket.on("data", (chunk: Buffer) => (received += chunk.toString()));
		socket.on("error", () => undefined);
		await new Promise((resolve) => socket.once("connect", resolve));
		const push = "POST /api/v1/telegram/webhook/x HTTP/1.1\r\nHost: gw\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}";
		// A Telegram push retried on every 503 on one kept-alive connection: a request under way when
		// close() is called, and another one every 50 ms for 3 s after.
		socket.write(push.slice(0, -1));
		const closing = ops.close();
		const started = Date.now();
		socket.write("}");
		const writer = setInterval(() => socket.writable && socket.write(push), 50);
		try {
			await closing;
			expect(Date.now() - started).toBeLessThan(2_500);
			// The last answer's bytes may still be on their way to this end of the socket.
			await new Promise((r) => setTimeout(r, 200));
		} finally {
			clearInterval(writer);
			socket.destroy();
			await gw.stop();
		}
		const statuses = [...received.matchAll(/^HTTP\/1\.1 (\d+)/gm)].map((m) => Number(m[1]));
		// Told to try again, never "no such route"; and told the connection ends with that answer.
		expect(statuses.length).toBeGreaterThan(0);
		expect(statuses.filter((s) => s !== 503)).toEqual([]);
		expect(received).toMatch(/\r\nConnection: close\r\n/i);
	});
});
