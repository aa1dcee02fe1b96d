/**
 * Hostile input against every REST route (property-based, fast-check): bodies, query strings and path
 * parameters of the wrong type, hostile keys, non-JSON, wrong content types, deep nesting and bodies
 * over 1 MB. Every answer is a 2xx or a 4xx in the API's error shape, never a 5xx; a refused request
 * stores nothing; the gateway keeps serving and its heap stays bounded. Injection strings sent as a
 * message, a bot's name and description and an API key's name come back as the same plain text
 * through REST and socket.io.
 */
import { request as httpRequest } from "node:http";
import { connect } from "node:net";
import { gzipSync } from "node:zlib";
import fc from "fast-check";
import { createKey, createUser } from "../support/auth";
import { userWrites, type MessageBody } from "../support/chat-helpers";
import { http, type HttpResult } from "../support/harness";
import { expectNo5xx, expectServing, expectUnchanged, heapUsed, requestLabel, type RestRoute, restRoutes, rowCounts, stopWithinHeapBound, telegramRefusedSend } from "../support/hostile-checks";
import { badIdSegment, deepNesting, hostileText, jsonBodyFor, mutatedBody, nestedJson, notJson, queryFor, runs } from "../support/hostile";
import { connectIo, type IoClient } from "../support/realtime-clients";
import { startTelegramGateway, type TelegramGateway } from "../support/telegram-gateway";

/** API.md's REST table, route by route. */
const API_ROUTES: Array<[string, string]> = [
	["POST", "/auth/login"],
	["POST", "/auth/refresh"],
	["POST", "/auth/logout"],
	["GET", "/auth/me"],
	["POST", "/users"],
	["GET", "/users"],
	["GET", "/users/:id"],
	["PATCH", "/users/:id"],
	["DELETE", "/users/:id"],
	["POST", "/apikeys"],
	["GET", "/apikeys"],
	["GET", "/apikeys/:id"],
	["DELETE", "/apikeys/:id"],
	["POST", "/apikeys/:id/rotate"],
	["POST", "/bots"],
	["GET", "/bots"],
	["GET", "/bots/:id"],
	["PATCH", "/bots/:id"],
	["DELETE", "/bots/:id"],
	["GET", "/chats"],
	["GET", "/chats/:id"],
	["GET", "/chats/:id/permissions"],
	["PUT", "/chats/:id/permissions"],
	["DELETE", "/chats/:id/permissions/:grant_id"],
	["GET", "/chats/:id/messages"],
	["POST", "/chats/:id/messages"],
	["GET", "/messages/:id"],
	["POST", "/webhooks"],
	["GET", "/webhooks"],
	["GET", "/webhooks/:id"],
	["PUT", "/webhooks/:id"],
	["PATCH", "/webhooks/:id"],
	["DELETE", "/webhooks/:id"],
	["POST", "/webhooks/:id/rotate-secret"],
	["POST", "/webhooks/:id/test"],
	["GET", "/webhooks/:id/deliveries"],
	["POST", "/webhooks/:id/deliveries/:delivery_id/retry"],
	["POST", "/webhooks/:id/replay"],
];

const BODY_METHODS = new Set(["POST", "PUT", "PATCH"]);
/** Routes that start work (a ping, a replay, a retry) or destroy: fuzzed against ids that do not exist only. */
const NO_REAL_IDS = /\/(test|replay|retry)$/;
const NOT_FOUND_IDS = ["987654", "2147483647", "9007199254740991"];

describe("hostile input: REST", () => {
	let t: TelegramGateway;
	let served: RestRoute[];
	/** Ids of real rows, by the resource a path names, so handlers run past their lookups too. */
	const existing: Record<string, number> = {};
	let heapBefore: number;
	let botToken: string;

	beforeAll(async () => {
		t = await startTelegramGateway({ mode: "polling" });
		const { bot, token } = await t.addBot({ username: "hostile_http_bot" });
		botToken = token;
		const written = await userWrites(t, token, bot.id, { chat_id: 4242, text: "a first message" });
		const viewer = await createUser(t.gw, t.adminToken, ["viewer"]);
		const key = await createKey(t.baseUrl, t.adminToken, { name: "fixture key" });
		const grant = await t.api<{ id: number }>("PUT", `/chats/${written.chatId}/permissions`, { user_id: viewer.id, can_read: true });
		// Scope `reply` to a message nobody answers: the fixture webhook never gets a delivery.
		const webhook = await t.api<{ id: number }>("POST", "/webhooks", { url: "http://127.0.0.1:9/never", scope: "reply", chat_ids: [written.chatId], reply_to_message_id: 999_999 });
		expect([grant.status, webhook.status]).toEqual([201, 201]);
		Object.assign(existing, {
			bots: bot.id,
			chats: written.chatId,
			messages: written.message.id,
			users: viewer.id,
			apikeys: key.id,
			webhooks: webhook.body.id,
			grant_id: grant.body.id,
		});
		existing.admin = (await t.api<{ id: number }>("GET", "/auth/me")).body.id;
		served = restRoutes(t.gw.broker);
		heapBefore = heapUsed();
	}, 60_000);
	afterAll(async () => {
		await stopWithinHeapBound(heapBefore, () => t?.stop());
	});

	const admin = () => ({ authorization: `Bearer ${t.adminToken}` });

	/** One request as the admin; checks the answer, that a refusal stored nothing, and that the gateway still serves. */
	async function probe(method: string, path: string, init: { raw?: string | Buffer; headers?: Record<string, string> } = {}): Promise<HttpResult<unknown>> {
		const label = requestLabel(method, path, init.raw);
		const before = await rowCounts(t.gw.runtime.db);
		const res = await http<unknown>(t.baseUrl, method, path, { raw: init.raw, headers: { ...admin(), ...init.headers } });
		if (expectNo5xx(res, label) >= 400 && !telegramRefusedSend((res.body as { error: { message: string } }).error.message)) {
			expectUnchanged(before, await rowCounts(t.gw.runtime.db), label);
		}
		await expectServing(t.baseUrl, t.adminToken);
		return res;
	}

	function segmentFor(route: RestRoute, param: string): fc.Arbitrary<string> {
		const real = route.method === "DELETE" || NO_REAL_IDS.test(route.path) ? undefined : existing[param] ?? existing[route.path.split("/")[3]!];
		const options = [badIdSegment, fc.constantFrom(...NOT_FOUND_IDS)];
		if (real !== undefined && param !== "delivery_id") options.push(fc.constant(String(real)));
		return fc.oneof(...options);
	}

	/** A request to `route` with every part hostile: path ids, the query, and the body. */
	function requestFor(route: RestRoute) {
		const hasBody = BODY_METHODS.has(route.method);
		return fc.record({
			segments: fc.tuple(...route.pathParams.map((p) => segmentFor(route, p))),
			query: queryFor(hasBody ? ["limit", "cursor"] : route.fields),
			body: hasBody ? jsonBodyFor(route.fields) : fc.constant(undefined),
		});
	}

	function fill(route: RestRoute, segments: string[]): string {
		let i = 0;
		return route.path.replace(/:([A-Za-z0-9_]+)/g, () => segments[i++]!);
	}

	async function fuzzRoute(route: RestRoute, numRuns: number): Promise<void> {
		await fc.assert(
			fc.asyncProperty(requestFor(route), async ({ segments, query, body }) => {
				await probe(route.method, fill(route, segments) + query, body === undefined ? {} : { raw: body, headers: { "content-type": "application/json" } });
			}),
			runs(numRuns),
		);
	}

	const servedRoute = (method: string, path: string) => served.find((r) => r.method === method && r.path === `/api/v1${path}`);

	describe("random values for every field of every route", () => {
		it.each(API_ROUTES)("%s %s", async (method, path) => {
			const route = servedRoute(method, path);
			expect(route).toBeDefined();
			await fuzzRoute(route!, 50);
		});

		it("routes the gateway serves beyond API.md's table are fuzzed as well", async () => {
			expect(served.length).toBeGreaterThanOrEqual(API_ROUTES.length);
			const extra = served.filter((r) => !API_ROUTES.some(([m, p]) => r.method === m && r.path === `/api/v1${p}`));
			for (const route of extra) await fuzzRoute(route, 30);
		});
	});

	describe("valid bodies with some fields hostile, so the handlers run too", () => {
		let templateUsers = 0;
		/** A valid request per route that takes a body; sends and triggers go to ids that do not exist. */
		const templates = (): Record<string, [string, string, Record<string, unknown>]> => {
			const e = existing;
			const webhook = { url: "http://127.0.0.1:9/fuzz", scope: "reply", chat_ids: [e.chats], reply_to_message_id: 999_999, event_types: ["new_message"], ordered: true, max_concurrency: 4 };
			return {
				"POST /users": ["POST", "/users", { username: `fuzzed.user.${++templateUsers}`, password: "a-long-enough-password", email: "fuzz@example.com", roles: ["viewer"] }],
				"PATCH /users/:id": ["PATCH", `/users/${e.users}`, { password: "another-long-password", email: "fuzz2@example.com", roles: ["viewer"], is_active: true }],
				// The admin's own id: the fuzzed routes may have deactivated the viewer by now.
				"POST /apikeys": ["POST", "/apikeys", { name: "fuzzed", scopes: ["chats:read"], expires_at: "2099-01-01T00:00:00Z", rate_limit: 10, user_id: e.admin }],
				"POST /bots": ["POST", "/bots", { token: t.telegram.addBot({ username: "fuzzed_bot" }), display_name: "fuzzed", description: "fuzzed" }],
				"PATCH /bots/:id": ["PATCH", `/bots/${e.bots}`, { display_name: "fuzzed", description: "fuzzed" }],
				"PUT /chats/:id/permissions": ["PUT", `/chats/${e.chats}/permissions`, { user_id: e.users, can_read: true, can_send: false, can_manage: false }],
				"POST /chats/:id/messages": ["POST", `/chats/${NOT_FOUND_IDS[0]}/messages`, { text: "hi", parse_mode: "HTML", reply_to_message_id: 1, disable_notification: true }],
				"POST /webhooks": ["POST", "/webhooks", webhook],
				"PUT /webhooks/:id": ["PUT", `/webhooks/${e.webhooks}`, { ...webhook, is_active: true }],
				"PATCH /webhooks/:id": ["PATCH", `/webhooks/${e.webhooks}`, { ...webhook, is_active: true }],
				"POST /webhooks/:id/replay": ["POST", `/webhooks/${NOT_FOUND_IDS[0]}/replay`, { since_seq: 0 }],
			};
		};

		it("regression: null, or an object no conversion can read ({\"toString\": false}), in any one field of a valid body is a VALIDATION_ERROR naming it (both were 500s)", async () => {
			// fastest-validator lets null through `optional` (lib/middlewares/null-params.ts refuses it) and threw
			// a TypeError converting such an object (lib/validator.ts refuses it); nullable fields take null.
			const NULLABLE = ["email", "description", "bot_id", "chat_ids", "reply_to_message_id", "event_types"];
			const failures: string[] = [];
			for (const [method, path, template] of Object.values(templates())) {
				for (const field of Object.keys(template)) {
					for (const value of [null, { toString: false }, { valueOf: {}, toString: "" }]) {
						const body = JSON.stringify({ ...template, [field]: value });
						try {
							const res = await probe(method, `/api/v1${path}`, { raw: body, headers: { "content-type": "application/json" } });
							const named = (res.body as { error?: { code: string; details?: { fields?: Array<{ field: string }> } } }).error;
							if (!(value === null && NULLABLE.includes(field)) && !(named?.code === "VALIDATION_ERROR" && named.details?.fields?.some((f) => f.field === field))) {
								failures.push(`${res.status} ${res.text.slice(0, 200)} for ${method} ${path} ${body}`);
							}
						} catch (err) {
							failures.push((err as Error).message.slice(0, 300));
						}
					}
				}
			}
			expect(failures).toEqual([]);
		});

		it.each(["POST /users", "PATCH /users/:id", "POST /apikeys", "POST /bots", "PATCH /bots/:id", "PUT /chats/:id/permissions", "POST /chats/:id/messages", "POST /webhooks", "PUT /webhooks/:id", "PATCH /webhooks/:id", "POST /webhooks/:id/replay"])(
			"%s",
			async (name) => {
				const [method, path, template] = templates()[name]!;
				// The template itself is accepted (or only its id is unknown): the mutations start from valid input.
				const valid = await t.api(method, path, template);
				expect([valid.status, valid.text]).toEqual([path.includes(NOT_FOUND_IDS[0]!) ? 404 : method === "POST" ? 201 : 200, expect.any(String)]);
				await fc.assert(
					fc.asyncProperty(mutatedBody(template), fc.boolean(), async (body, asForm) => {
						// Now and then the same fields as a form, where every value arrives as a string.
						const raw = asForm ? new URLSearchParams(Object.entries(JSON.parse(body) as Record<string, unknown>).map(([k, v]): [string, string] => [k, typeof v === "string" ? v : String(JSON.stringify(v))])).toString() : body;
						await probe(method, `/api/v1${path}`, { raw, headers: { "content-type": asForm ? "application/x-www-form-urlencoded" : "application/json" } });
					}),
					runs(60),
				);
			},
		);
	});

	describe("bodies that are not what the route reads", () => {
		const bodyRoutes = () => served.filter((r) => BODY_METHODS.has(r.method));
		const realPath = (route: RestRoute) => fill(route, route.pathParams.map(() => NOT_FOUND_IDS[0]!));

		it("text that is not JSON, sent as JSON: 400 BAD_REQUEST", async () => {
			await fc.assert(
				fc.asyncProperty(fc.nat(), notJson, async (pick, text) => {
					const routes = bodyRoutes();
					const route = routes[pick % routes.length]!;
					const res = await probe(route.method, realPath(route), { raw: text, headers: { "content-type": "application/json" } });
					expect({ status: res.status, code: (res.body as { error: { code: string } }).error.code }).toEqual({ status: 400, code: "BAD_REQUEST" });
				}),
				runs(100),
			);
		});

		it("bodies that are not the gzip or deflate data their Content-Encoding says: 400 BAD_REQUEST (they were 500s), login included", async () => {
			const garbled = fc.oneof(
				notJson.map((text) => Buffer.from(text)),
				fc.uint8Array({ maxLength: 256 }).map((a) => Buffer.from(a)),
				fc.integer({ min: 1, max: 20 }).map((n) => gzipSync(JSON.stringify({ name: "x".repeat(50) })).subarray(0, n)),
			).filter((body) => body.length > 0); // an empty body is no body: nothing to decompress
			await fc.assert(
				fc.asyncProperty(fc.nat(), fc.constantFrom("gzip", "deflate"), garbled, async (pick, encoding, body) => {
					const routes = bodyRoutes();
					const route = routes[pick % routes.length]!;
					const res = await probe(route.method, realPath(route), { raw: body, headers: { "content-type": "application/json", "content-encoding": encoding } });
					expect({ status: res.status, code: (res.body as { error: { code: string } }).error.code }).toEqual({ status: 400, code: "BAD_REQUEST" });
				}),
				runs(60),
			);
			const login = await http<{ error: { code: string; message: string } }>(t.baseUrl, "POST", "/api/v1/auth/login", {
				raw: '{"username":"a","password":"b"}',
				headers: { "content-type": "application/json", "content-encoding": "gzip" },
			});
			expect({ status: login.status, body: login.body }).toEqual({ status: 400, body: { error: { code: "BAD_REQUEST", message: "The body is not valid gzip data" } } });
		});

		it("other content types, charsets and raw bytes: 415 or another 4xx, never a 5xx", async () => {
			const contentType = fc.oneof(
				fc.constantFrom(
					"text/plain",
					"application/xml",
					"multipart/form-data; boundary=xyz",
					"application/json; charset=utf-16",
					"application/json; charset=klingon",
					"application/x-www-form-urlencoded",
					"application/x-www-form-urlencoded; charset=latin1",
					"application/octet-stream",
					"application/json, text/plain",
					"",
					";;;",
					"__proto__",
					"constructor; charset=utf-8",
				),
				fc.string({ maxLength: 40 }).filter((s) => /^[\x20-\x7e]*$/.test(s)),
			);
			const raw = fc.oneof(notJson, fc.uint8Array({ maxLength: 512 }).map((a) => Buffer.from(a)), fc.constantFrom("a=1&b[c]=2&__proto__[x]=1", "name=%zz&scopes[]=x", "text=" + "y".repeat(5000)));
			await fc.assert(
				fc.asyncProperty(fc.nat(), contentType, raw, async (pick, type, body) => {
					const routes = bodyRoutes();
					const route = routes[pick % routes.length]!;
					await probe(route.method, realPath(route), { raw: body, headers: type === "" ? {} : { "content-type": type } });
				}),
				runs(100),
			);
		});

		it("JSON nested deeper than 64 levels: 400 BAD_REQUEST, whatever the depth", async () => {
			await fc.assert(
				fc.asyncProperty(fc.nat(), deepNesting, async (pick, { depth, kind }) => {
					const routes = bodyRoutes();
					const route = routes[pick % routes.length]!;
					const body = `{"text": ${nestedJson(depth, kind)}}`;
					const res = await probe(route.method, realPath(route), { raw: body, headers: { "content-type": "application/json" } });
					expect({ status: res.status, code: (res.body as { error: { code: string } }).error.code }).toEqual({ status: 400, code: "BAD_REQUEST" });
				}),
				runs(50),
			);
		});

		it("bodies over 1 MB: 413 PAYLOAD_TOO_LARGE, with or without a Content-Length", async () => {
			await fc.assert(
				fc.asyncProperty(fc.nat(), fc.integer({ min: 1024 * 1024 + 1, max: 3 * 1024 * 1024 }), fc.boolean(), async (pick, size, chunked) => {
					const routes = bodyRoutes();
					const route = routes[pick % routes.length]!;
					const body = `{"text":"${"x".repeat(size)}"}`;
					const before = await rowCounts(t.gw.runtime.db);
					const res = chunked ? await chunkedPost(route.method, realPath(route), body) : await http<unknown>(t.baseUrl, route.method, realPath(route), { raw: body, headers: { ...admin(), "content-type": "application/json" } });
					expect({ status: res.status, code: (res.body as { error?: { code: string } }).error?.code }).toEqual({ status: 413, code: "PAYLOAD_TOO_LARGE" });
					expectUnchanged(before, await rowCounts(t.gw.runtime.db), requestLabel(route.method, route.path, body));
					await expectServing(t.baseUrl, t.adminToken);
				}),
				runs(8),
			);
		});

		/** A body sent in chunks without a Content-Length (Transfer-Encoding: chunked). */
		function chunkedPost(method: string, path: string, body: string): Promise<HttpResult<unknown>> {
			const url = new URL(t.baseUrl + path);
			return new Promise((resolve, reject) => {
				const req = httpRequest({ host: url.hostname, port: url.port, path: url.pathname, method, headers: { ...admin(), "content-type": "application/json", "transfer-encoding": "chunked" } }, (res) => {
					let text = "";
					res.on("data", (chunk: Buffer) => (text += chunk.toString()));
					res.on("end", () => resolve({ status: res.statusCode ?? 0, headers: new Headers(), body: JSON.parse(text) as unknown, text }));
				});
				// The server may answer 413 and close before the whole body is written.
				req.on("error", reject);
				for (let i = 0; i < body.length; i += 64 * 1024) req.write(body.slice(i, i + 64 * 1024));
				req.end();
			});
		}
	});

	describe("methods and headers", () => {
		it("every path with a method it does not serve: 404 in the error shape, never a 5xx", async () => {
			const methods = fc.constantFrom("GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS");
			await fc.assert(
				fc.asyncProperty(fc.nat(), methods, async (pick, method) => {
					const route = served[pick % served.length]!;
					const path = fill(route, route.pathParams.map(() => NOT_FOUND_IDS[0]!));
					await probe(method, path, BODY_METHODS.has(method) ? { raw: "{}", headers: { "content-type": "application/json" } } : {});
				}),
				runs(100),
			);
		});

		it("what Node's HTTP parser refuses is answered in the error shape with an X-Request-Id, and the server keeps serving", async () => {
			const url = new URL(t.baseUrl);
			const rawExchange = (request: string) =>
				new Promise<string>((resolve, reject) => {
					const socket = connect(Number(url.port), url.hostname, () => socket.end(request));
					let text = "";
					socket.on("data", (chunk: Buffer) => (text += chunk.toString()));
					socket.on("close", () => resolve(text));
					socket.on("error", reject);
				});
			const cases: Array<[string, number]> = [
				["NOT HTTP AT ALL\r\n\r\n", 400],
				["GET /api/v1/health HTTP/1.1\r\nHost: x\r\nBad Header Name: 1\r\n\r\n", 400],
				[`GET /api/v1/auth/me HTTP/1.1\r\nHost: x\r\nX-Filler: ${"a".repeat(20_000)}\r\n\r\n`, 431],
			];
			for (const [request, status] of cases) {
				const answer = await rawExchange(request);
				const [head, body] = answer.split("\r\n\r\n");
				expect(head).toMatch(new RegExp(`^HTTP/1.1 ${status} `));
				expect(head).toMatch(/\r\nX-Request-Id: [0-9a-f-]{36}\r\n/i);
				expect(head).toMatch(/\r\nContent-Type: application\/json/i);
				expect(JSON.parse(body!)).toEqual({ error: { code: "BAD_REQUEST", message: expect.any(String) } });
			}
			expect((await t.api("GET", "/auth/me")).status).toBe(200);
		});

		it("hostile X-Request-Id, Idempotency-Key, User-Agent and X-Forwarded-For headers: answered, never a 5xx", async () => {
			const headerText = fc.oneof(hostileText, fc.string({ maxLength: 300 }), fc.constantFrom("", " ", "x".repeat(3_000), "a".repeat(64), "a".repeat(65), "key with spaces", "ok-key_1.2:3")).map((v) => v.replace(/[^\x20-\x7e]/g, "").trim());
			const headers = fc.record({ "x-request-id": headerText, "idempotency-key": headerText, "user-agent": headerText, "x-forwarded-for": headerText }, { requiredKeys: [] });
			await fc.assert(
				fc.asyncProperty(fc.nat(), headers, async (pick, extra) => {
					const route = served[pick % served.length]!;
					const path = fill(route, route.pathParams.map(() => NOT_FOUND_IDS[0]!));
					const res = await probe(route.method, path, BODY_METHODS.has(route.method) ? { raw: "{}", headers: { "content-type": "application/json", ...extra } } : { headers: extra });
					expect(res.headers.get("x-request-id")).toMatch(/^[A-Za-z0-9._:-]{1,128}$/);
				}),
				runs(100),
			);
		});
	});

	describe("injection strings round-trip as plain text", () => {
		let io: IoClient;
		/** Telegram allows one message a second per chat (the gateway paces sends): a chat per run or two. */
		const chats: number[] = [];
		beforeAll(async () => {
			io = await connectIo(t.baseUrl, { token: t.adminToken });
			expect(await io.subscribe({ bot_id: existing.bots })).toMatchObject({ ok: true });
			for (let i = 0; i < 25; i++) chats.push((await userWrites(t, botToken, existing.bots!, { chat_id: 6000 + i, text: "a chat for the round trip" })).chatId);
		}, 30_000);
		afterAll(() => io?.close());

		it("a message's text: POST /chats/:id/messages, GET /messages/:id, GET /chats/:id/messages and the socket.io event", async () => {
			// Telegram refuses a text that is only whitespace ("message text is empty").
			const text = hostileText.filter((s) => s.trim().length > 0 && s.length <= 4096);
			let sends = 0;
			await fc.assert(
				fc.asyncProperty(text, async (sent) => {
					const chat = chats[sends++ % chats.length]!;
					const posted = await t.api<MessageBody>("POST", `/chats/${chat}/messages`, { text: sent });
					expect(posted.status).toBe(201);
					expect(posted.body.text).toBe(sent);
					expect((await t.api<MessageBody>("GET", `/messages/${posted.body.id}`)).body.text).toBe(sent);
					const history = await t.api<{ data: MessageBody[] }>("GET", `/chats/${chat}/messages?limit=1`);
					expect(history.body.data[0]).toMatchObject({ id: posted.body.id, text: sent });
					const event = await io.waitFor((r) => r.event === "outgoing_message" && (r.payload.message as MessageBody | undefined)?.id === posted.body.id);
					expect((event.payload.message as MessageBody).text).toBe(sent);
					expect(t.telegram.sent.at(-1)?.params.text).toBe(sent);
				}),
				runs(50),
			);
		});

		it("a bot's display_name and description (PATCH /bots/:id, GET /bots/:id, GET /bots)", async () => {
			// display_name is trimmed by design: give it text without surrounding whitespace.
			const name = hostileText.filter((s) => s === s.trim() && s.length > 0 && s.length <= 128);
			const description = hostileText.filter((s) => s.length <= 2000);
			await fc.assert(
				fc.asyncProperty(name, description, async (display_name, desc) => {
					const patched = await t.api("PATCH", `/bots/${existing.bots}`, { display_name, description: desc });
					expect(patched.status).toBe(200);
					expect(patched.body).toMatchObject({ display_name, description: desc });
					expect((await t.api("GET", `/bots/${existing.bots}`)).body).toMatchObject({ display_name, description: desc });
					const listed = await t.api<{ data: Array<{ id: number; display_name: string; description: string }> }>("GET", "/bots");
					expect(listed.body.data.find((b) => b.id === existing.bots)).toMatchObject({ display_name, description: desc });
				}),
				runs(50),
			);
		});

		it("an API key's name (POST /apikeys, GET /apikeys/:id)", async () => {
			const name = hostileText.filter((s) => s === s.trim() && s.length > 0 && s.length <= 100);
			await fc.assert(
				fc.asyncProperty(name, async (keyName) => {
					const created = await t.api<{ id: number; name: string }>("POST", "/apikeys", { name: keyName });
					expect(created.status).toBe(201);
					expect(created.body.name).toBe(keyName);
					expect((await t.api("GET", `/apikeys/${created.body.id}`)).body).toMatchObject({ name: keyName });
					expect((await t.api("DELETE", `/apikeys/${created.body.id}`)).status).toBe(204);
				}),
				runs(50),
			);
		});
	});
});
