/**
 * Input whose cost grew with its size before anything refused it: a JSON array or a very wide object
 * as a body (merged into the params before authentication, and answered with one validation error
 * per element), an array far past its rule's max with duplicates (fastest-validator's duplicate
 * search is quadratic, and it ran before the permission check), and a Telegram push with many
 * top-level keys (each became an event). Each is refused at once, with a short answer, and stores
 * nothing. And bodies read before whoever sent them was known: past 64 KB without a verified header
 * or query credential, and a Telegram push before its path and secret are checked.
 */
import { request as httpRequest } from "node:http";
import { QueryTypes } from "sequelize";
import { createUser, expectApiError } from "../support/auth";
import { http } from "../support/harness";
import { eventually } from "../support/receivers";
import { ADMIN_PASSWORD, startTelegramGateway, type TelegramGateway } from "../support/telegram-gateway";

describe("oversized input is refused before it costs", () => {
	let t: TelegramGateway;

	beforeAll(async () => {
		t = await startTelegramGateway({ mode: "webhook", env: { LOG_LEVEL: "warn" } });
	}, 60_000);
	afterAll(() => t.stop());

	const count = async (table: string) =>
		Number((await t.gw.runtime.db.sequelize.query<{ n: number }>(`SELECT COUNT(*) AS n FROM ${table}`, { type: QueryTypes.SELECT }))[0]!.n);

	// The bodies below are over 64 KB: read only with a credential verified first (a header here).
	const verified = () => ({ authorization: `Bearer ${t.adminToken}` });

	it("a JSON array as the body of a public route is a 400 that does not echo it", async () => {
		const raw = JSON.stringify(Array.from({ length: 50_000 }, () => 0));
		const res = await http(t.baseUrl, "POST", "/api/v1/auth/login", { raw, headers: { ...verified(), "content-type": "application/json" } });
		const error = expectApiError(res, 400, "BAD_REQUEST");
		expect(error.message).toBe("The body must be a JSON object");
		expect(res.text.length).toBeLessThan(1_000);
	});

	it("a body wider than 100 fields is a 400 naming the cap; a narrower one with unknown fields names 20 and counts the rest", async () => {
		const fields = (n: number) => Object.fromEntries(Array.from({ length: n }, (_, i) => [`f${i}`, i]));
		const wide = await http(t.baseUrl, "POST", "/api/v1/auth/login", { body: fields(50_000), headers: verified() });
		expect(expectApiError(wide, 400, "BAD_REQUEST").details).toEqual({ limit: 100 });
		expect(wide.text.length).toBeLessThan(1_000);

		const unknown = await http(t.baseUrl, "POST", "/api/v1/auth/login", { body: { username: "admin", password: "x", ...fields(60) } });
		const error = expectApiError(unknown, 400, "VALIDATION_ERROR");
		const details = error.details as unknown as { fields: Array<{ field: string; type: string }>; more_fields: number };
		expect(details.fields).toHaveLength(20);
		expect(details.fields.every((f) => f.type === "objectStrict")).toBe(true);
		expect(details.more_fields).toBe(40);
		expect(error.message).toMatch(/ and 40 more$/);
	});

	it("an array past its max is refused as such, before its items (or duplicates) are looked at, and nothing is stored", async () => {
		// A caller with the permission (one without is refused 403 before its params are read).
		const operator = await createUser(t.gw, t.adminToken, ["operator"]);
		const admin = t.adminToken;
		const before = await count("webhooks");
		const chatIds = [...Array.from({ length: 100_000 }, (_, i) => i + 1), 1];
		for (const token of [operator.token, admin]) {
			const res = await http(t.baseUrl, "POST", "/api/v1/webhooks", {
				body: { url: "https://example.com/hook", chat_ids: chatIds },
				headers: { authorization: `Bearer ${token}` },
			});
			const error = expectApiError(res, 400, "VALIDATION_ERROR");
			expect(error.details).toEqual({ fields: [{ field: "chat_ids", type: "arrayMax", message: "The 'chat_ids' field must contain less than or equal to 100 items." }] });
		}
		const roles = await http(t.baseUrl, "PATCH", "/api/v1/users/1", {
			body: { roles: Array.from({ length: 50_000 }, () => "viewer") },
			headers: { authorization: `Bearer ${admin}` },
		});
		expect(expectApiError(roles, 400, "VALIDATION_ERROR").details).toEqual({ fields: [expect.objectContaining({ field: "roles", type: "arrayMax" })] });
		expect(await count("webhooks")).toBe(before);
	});

	it("a NUL character in a login's username is the 401 of any unknown username, not a 500 from SQLite (found by hostile-http's property test)", async () => {
		const res = await http(t.baseUrl, "POST", "/api/v1/auth/login", { body: { username: "admin\u0000'; DROP TABLE users; --", password: "9".repeat(26) } });
		expectApiError(res, 401, "UNAUTHORIZED");
		const users = await http(t.baseUrl, "GET", "/api/v1/users", { headers: { authorization: `Bearer ${t.adminToken}` } });
		expect(users.status).toBe(200);
	});

	it("a Telegram push with more than 16 top-level keys is a 400 and nothing of it is stored", async () => {
		const added = await t.addBot({ username: "wide_update_bot" });
		const path = added.bot.webhook_url!.split("/").pop()!;
		const secret = t.telegram.bot(added.token).webhook!.secret_token!;
		const before = await count("telegram_updates");
		const update: Record<string, unknown> = { update_id: 9_001 };
		for (let i = 0; i < 16; i++) update[`future_kind_${i}`] = { payload: "x".repeat(1_000) };
		const res = await http(t.baseUrl, "POST", `/api/v1/telegram/webhook/${path}`, {
			body: update,
			headers: { "x-telegram-bot-api-secret-token": secret },
		});
		expect(expectApiError(res, 400, "BAD_REQUEST").details).toEqual({ limit: 16 });
		expect(await count("telegram_updates")).toBe(before);
	});
	describe("a body over 64 KB is read only for a credential verified before it", () => {
		const big = (bytes: number) => ({ name: "k", pad: "y".repeat(bytes) });
		const tooLarge = (res: Awaited<ReturnType<typeof http>>, limit: number) => {
			const error = expectApiError(res, 413, "PAYLOAD_TOO_LARGE");
			expect(error.details).toEqual({ limit });
			if (limit === 65_536) expect(error.message).toMatch(/larger than 64 KB: .* valid credential in a header or the query/);
		};

		it("no credential, one that does not verify, or one in the body: 413 past 64 KB, and nothing is stored", async () => {
			const before = await count("api_keys");
			tooLarge(await http(t.baseUrl, "POST", "/api/v1/apikeys", { body: big(70_000) }), 65_536);
			tooLarge(await http(t.baseUrl, "POST", "/api/v1/apikeys", { body: big(70_000), headers: { "x-api-key": `tgw_${"a".repeat(43)}` } }), 65_536);
			tooLarge(await http(t.baseUrl, "POST", "/api/v1/apikeys", { body: big(70_000), headers: { authorization: "Bearer not-a-token" } }), 65_536);
			tooLarge(await http(t.baseUrl, "POST", "/api/v1/apikeys", { body: { ...big(70_000), api_key: t.adminToken } }), 65_536);
			// A public route too: a login has no business being 64 KB.
			tooLarge(await http(t.baseUrl, "POST", "/api/v1/auth/login", { body: { username: "admin", password: "p".repeat(70_000) } }), 65_536);
			expect(await count("api_keys")).toBe(before);
		});

		it("without a Content-Length (chunked), the read stops at 64 KB just the same", async () => {
			const body = JSON.stringify(big(200_000));
			const res = await new Promise<{ status: number; text: string }>((resolve, reject) => {
				const url = new URL(`${t.baseUrl}/api/v1/apikeys`);
				const req = httpRequest({ host: url.hostname, port: url.port, path: url.pathname, method: "POST", headers: { "content-type": "application/json", "transfer-encoding": "chunked" } }, (answer) => {
					let text = "";
					answer.on("data", (chunk: Buffer) => (text += chunk.toString()));
					answer.on("end", () => resolve({ status: answer.statusCode ?? 0, text }));
				});
				req.on("error", reject);
				for (let i = 0; i < body.length; i += 16 * 1024) req.write(body.slice(i, i + 16 * 1024));
				req.end();
			});
			expect(res.status).toBe(413);
			expect((JSON.parse(res.text) as { error: { details: unknown } }).error.details).toEqual({ limit: 65_536 });
		});

		it("a verified header or query credential reads up to 1 MB; within 64 KB every form works as before", async () => {
			const key = await http<{ key: string }>(t.baseUrl, "POST", "/api/v1/apikeys", { body: { name: "body-limit" }, headers: verified() });
			expect(key.status).toBe(201);
			// Past 64 KB, a verified request reaches the action's own validation (an unknown field here).
			for (const headers of [verified(), { "x-api-key": key.body.key }]) {
				const res = await http(t.baseUrl, "POST", "/api/v1/apikeys", { body: big(300_000), headers });
				expect(expectApiError(res, 400, "VALIDATION_ERROR").details).toEqual({ fields: [expect.objectContaining({ field: "pad", type: "objectStrict" })] });
			}
			const viaQuery = await http(t.baseUrl, "POST", `/api/v1/apikeys?api_key=${key.body.key}`, { body: big(300_000) });
			expectApiError(viaQuery, 400, "VALIDATION_ERROR");
			// And 1 MB stays the limit for them.
			tooLarge(await http(t.baseUrl, "POST", "/api/v1/apikeys", { body: big(1_100_000), headers: verified() }), 1_048_576);

			// Small bodies: a credential in the body, a login, and a refused header credential's own 401.
			const inBody = await http(t.baseUrl, "POST", "/api/v1/apikeys", { body: { name: "from-body", api_key: key.body.key } });
			expect(inBody.status).toBe(201);
			const login = await http(t.baseUrl, "POST", "/api/v1/auth/login", { body: { username: "admin", password: ADMIN_PASSWORD }, headers: { authorization: "Bearer stale" } });
			expect(login.status).toBe(200);
			const refused = await http(t.baseUrl, "POST", "/api/v1/apikeys", { body: { name: "nope" }, headers: { "x-api-key": `tgw_${"b".repeat(43)}` } });
			expectApiError(refused, 401, "UNAUTHORIZED");
		});
	});
	describe("a Telegram push's path and secret are checked before its body is read", () => {
		// Malformed JSON: a 400 would mean the body was parsed.
		const garbage = `{"update_id": 1, ${"x".repeat(900_000)}`;
		const push = (path: string, secret: string | undefined, raw = garbage) =>
			http(t.baseUrl, "POST", `/api/v1/telegram/webhook/${path}`, {
				raw,
				headers: { "content-type": "application/json", ...(secret === undefined ? {} : { "x-telegram-bot-api-secret-token": secret }) },
			});

		it("no bot's path: 404; a bot's path with a missing, wrong or overlong secret: 401; with its secret the body is read (400 here)", async () => {
			const added = await t.addBot({ username: "checked_first_bot" });
			const path = added.bot.webhook_url!.split("/").pop()!;
			const secret = t.telegram.bot(added.token).webhook!.secret_token!;
			const before = await count("telegram_updates");
			expectApiError(await push("ab".repeat(32), secret), 404, "NOT_FOUND");
			expectApiError(await push("not-even-hex", secret), 404, "NOT_FOUND");
			for (const wrong of [undefined, "wrong", secret.replace(/.$/, (c) => (c === "a" ? "b" : "a")), "s".repeat(300)]) {
				expectApiError(await push(path, wrong), 401, "UNAUTHORIZED");
			}
			expect(expectApiError(await push(path, secret), 400, "BAD_REQUEST").message).toBe("Malformed JSON body");
			const stored = await push(path, secret, JSON.stringify({ update_id: 424_242 }));
			expect(stored.status).toBe(200);
			expect(await count("telegram_updates")).toBe(before + 1);
		});

		it("a deleted bot's path is refused before the body at once, not when the verified path expires", async () => {
			const added = await t.addBot({ username: "deleted_first_bot" });
			const path = added.bot.webhook_url!.split("/").pop()!;
			const secret = t.telegram.bot(added.token).webhook!.secret_token!;
			expect((await push(path, secret, JSON.stringify({ update_id: 1 }))).status).toBe(200);
			expect((await t.api("DELETE", `/bots/${added.bot.id}`)).status).toBe(204);
			await eventually(async () => (await push(path, secret)).status === 404, 2_000, "the deleted bot's pushes refused before the body");
		});
	});
});
