/**
 * Input whose cost grew with its size before anything refused it: a JSON array or a very wide object
 * as a body (merged into the params before authentication, and answered with one validation error
 * per element), an array far past its rule's max with duplicates (fastest-validator's duplicate
 * search is quadratic, and it ran before the permission check), and a Telegram push with many
 * top-level keys (each became an event). Each is refused at once, with a short answer, and stores
 * nothing.
 */
import { QueryTypes } from "sequelize";
import { createUser, expectApiError } from "../support/auth";
import { http } from "../support/harness";
import { startTelegramGateway, type TelegramGateway } from "../support/telegram-gateway";

describe("oversized input is refused before it costs", () => {
	let t: TelegramGateway;

	beforeAll(async () => {
		t = await startTelegramGateway({ mode: "webhook", env: { LOG_LEVEL: "warn" } });
	}, 60_000);
	afterAll(() => t.stop());

	const count = async (table: string) =>
		Number((await t.gw.runtime.db.sequelize.query<{ n: number }>(`SELECT COUNT(*) AS n FROM ${table}`, { type: QueryTypes.SELECT }))[0]!.n);

	it("a JSON array as the body of a public route is a 400 that does not echo it", async () => {
		const raw = JSON.stringify(Array.from({ length: 50_000 }, () => 0));
		const res = await http(t.baseUrl, "POST", "/api/v1/auth/login", { raw, headers: { "content-type": "application/json" } });
		const error = expectApiError(res, 400, "BAD_REQUEST");
		expect(error.message).toBe("The body must be a JSON object");
		expect(res.text.length).toBeLessThan(1_000);
	});

	it("a body wider than 100 fields is a 400 naming the cap; a narrower one with unknown fields names 20 and counts the rest", async () => {
		const fields = (n: number) => Object.fromEntries(Array.from({ length: n }, (_, i) => [`f${i}`, i]));
		const wide = await http(t.baseUrl, "POST", "/api/v1/auth/login", { body: fields(50_000) });
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
		const viewer = await createUser(t.gw, t.adminToken, ["viewer"]);
		const admin = t.adminToken;
		const before = await count("webhooks");
		const chatIds = [...Array.from({ length: 100_000 }, (_, i) => i + 1), 1];
		for (const token of [viewer.token, admin]) {
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
});
