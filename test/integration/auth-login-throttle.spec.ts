/**
 * Brute-force protection of POST /auth/login. Every HTTP attempt here comes from 127.0.0.1, so each
 * describe block has a gateway (and in-memory shared state) of its own; failures that only need to be
 * counted go through the `auth.login` action from addresses of their own (the throttle keys by
 * meta.clientIp), which also keeps the per-address limit out of the per-username tests.
 */
import { http, type TestGateway } from "../support/harness";
import { ADMIN_PASSWORD, adminToken, createUser, expectApiError, loginAction, nextAddress, startAuthGateway, type Json } from "../support/auth";

const login = (gw: TestGateway, username: string, password: string) =>
	http<Json>(gw.baseUrl, "POST", "/api/v1/auth/login", { body: { username, password } });

/** `count` failed logins for one username at once, each from an address of its own. */
async function failLogins(gw: TestGateway, username: string, count: number): Promise<void> {
	const attempts = Array.from({ length: count }, () => loginAction(gw.broker, username, "definitely-wrong-password", nextAddress()));
	const outcomes = await Promise.allSettled(attempts);
	for (const outcome of outcomes) {
		expect(outcome.status).toBe("rejected");
		expect((outcome as PromiseRejectedResult).reason).toMatchObject({ code: 401, type: "UNAUTHORIZED" });
	}
}

function retryAfterSeconds(res: { headers: Headers }): number {
	const header = res.headers.get("retry-after");
	expect(header).toMatch(/^\d+$/);
	return Number(header);
}

describe("login throttle per username", () => {
	let gw: TestGateway;
	let admin: string;
	beforeAll(async () => {
		gw = await startAuthGateway();
		admin = await adminToken(gw);
	});
	afterAll(() => gw.stop());

	it("from the 3rd failure on, the next attempt waits before the password is checked", async () => {
		await failLogins(gw, "admin", 3);
		const started = Date.now();
		const res = await login(gw, "admin", ADMIN_PASSWORD);
		const elapsed = Date.now() - started;
		expect(res.status).toBe(200);
		expect(elapsed).toBeGreaterThanOrEqual(200);
	});

	it("10 failures lock the username: 429 with Retry-After even with the right password, and no session", async () => {
		const user = await createUser(gw, admin, ["viewer"]);
		const tokensBefore = await gw.runtime.db.models.RefreshToken.count({ where: { user_id: user.id } });
		const lastLogin = (await gw.runtime.db.models.User.findByPk(user.id, { raw: true }))!.last_login_at;
		await failLogins(gw, user.username, 10);

		const res = await login(gw, user.username, user.password);
		const error = expectApiError(res, 429, "RATE_LIMITED");
		const retryAfter = retryAfterSeconds(res);
		expect(retryAfter).toBeGreaterThan(60);
		expect(retryAfter).toBeLessThanOrEqual(15 * 60);
		expect(error.details).toMatchObject({ retry_after: expect.any(Number) });

		// Nothing was granted: no new refresh token, no new last login.
		expect(await gw.runtime.db.models.RefreshToken.count({ where: { user_id: user.id } })).toBe(tokensBefore);
		expect((await gw.runtime.db.models.User.findByPk(user.id, { raw: true }))!.last_login_at).toEqual(lastLogin);
		// Another address does not get around it: the lock is on the name.
		await expect(loginAction(gw.broker, user.username, user.password, nextAddress())).rejects.toMatchObject({ code: 429, type: "RATE_LIMITED" });
		expect(await gw.runtime.db.models.SecurityEvent.count({ where: { type: "login_locked" } })).toBeGreaterThanOrEqual(1);
		// Names are locked case-insensitively.
		await expect(loginAction(gw.broker, user.username.toUpperCase(), user.password)).rejects.toMatchObject({ code: 429 });
		// Other users are not affected.
		expect((await loginAction(gw.broker, "admin", ADMIN_PASSWORD)).access_token).toEqual(expect.any(String));
	});

	it("guesses sent all at once get no more password checks than one after another: 10, then the lock", async () => {
		const user = await createUser(gw, admin, ["viewer"]);
		const outcomes = await Promise.allSettled(Array.from({ length: 40 }, () => loginAction(gw.broker, user.username, "a-wrong-password-at-once", nextAddress())));
		const codes = outcomes.map((o) => (o.status === "rejected" ? (o.reason as { code: number }).code : 200));
		expect(codes.filter((c) => c === 401)).toHaveLength(10);
		expect(codes.filter((c) => c === 429)).toHaveLength(30);
		await expect(loginAction(gw.broker, user.username, user.password, nextAddress())).rejects.toMatchObject({ code: 429 });
	});

	it("an unknown username locks exactly like an existing one", async () => {
		const known = await createUser(gw, admin, ["viewer"]);
		await failLogins(gw, known.username, 10);
		await failLogins(gw, "no-such-user-here", 10);
		const knownRes = await login(gw, known.username, known.password);
		const unknownRes = await login(gw, "no-such-user-here", "whatever-password");
		expectApiError(knownRes, 429, "RATE_LIMITED");
		expectApiError(unknownRes, 429, "RATE_LIMITED");
		const strip = (body: Json) => ({ ...body, error: { ...(body.error as Json), details: Object.keys((body.error as { details: Json }).details) } });
		expect(strip(unknownRes.body)).toEqual(strip(knownRes.body));
		expect(Math.abs(retryAfterSeconds(unknownRes) - retryAfterSeconds(knownRes))).toBeLessThanOrEqual(5);
	});
});

describe("login throttle per address", () => {
	let gw: TestGateway;
	beforeAll(async () => {
		gw = await startAuthGateway();
	});
	afterAll(() => gw.stop());

	it("the 11th attempt within a minute from one address is 429, whatever the outcome would be", async () => {
		for (let i = 1; i <= 10; i++) {
			const ok = await login(gw, "admin", ADMIN_PASSWORD);
			expect({ attempt: i, status: ok.status }).toEqual({ attempt: i, status: 200 });
		}
		const tokensBefore = await gw.runtime.db.models.RefreshToken.count();
		const res = await login(gw, "admin", ADMIN_PASSWORD);
		expectApiError(res, 429, "RATE_LIMITED");
		const retryAfter = retryAfterSeconds(res);
		expect(retryAfter).toBeGreaterThanOrEqual(1);
		expect(retryAfter).toBeLessThanOrEqual(60);
		expect(await gw.runtime.db.models.RefreshToken.count()).toBe(tokensBefore);
		// Without TRUST_PROXY, X-Forwarded-For is not believed: it does not buy a fresh address.
		const spoofed = await http<Json>(gw.baseUrl, "POST", "/api/v1/auth/login", {
			body: { username: "admin", password: ADMIN_PASSWORD },
			headers: { "x-forwarded-for": "203.0.113.9" },
		});
		expectApiError(spoofed, 429, "RATE_LIMITED");
		expect(await gw.runtime.db.models.RefreshToken.count()).toBe(tokensBefore);
		// The limit is the address's, not the user's: from elsewhere the same login works.
		expect((await loginAction(gw.broker, "admin", ADMIN_PASSWORD, "10.250.0.1")).access_token).toEqual(expect.any(String));
	});
});
