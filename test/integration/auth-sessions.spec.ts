/**
 * Sessions: POST /auth/login, /auth/refresh, /auth/logout and GET /auth/me with access tokens.
 * Logins over HTTP come from 127.0.0.1 and count against its login throttle, so only a handful go
 * through HTTP (at most two of them failing); every other token is minted through `auth.login`
 * from addresses of its own. Throttling itself is in auth-login-throttle.spec.ts.
 */
import { randomUUID } from "node:crypto";
import jwt from "jsonwebtoken";
import { Op } from "sequelize";
import { http, type TestGateway } from "../support/harness";
import {
	ADMIN_PASSWORD,
	adminToken,
	api,
	bearer,
	createUser,
	expectApiError,
	loginAction,
	me,
	startAuthGateway,
	type Json,
	type LoginResult,
} from "../support/auth";

describe("auth sessions", () => {
	let gw: TestGateway;
	let admin: string;
	let adminId: number;

	beforeAll(async () => {
		gw = await startAuthGateway();
		admin = await adminToken(gw);
		adminId = Number((await me(gw.baseUrl, admin)).body.id);
	});
	afterAll(() => gw.stop());

	const refreshRows = () => gw.runtime.db.models.RefreshToken.count();
	const login = (username: string, password: string) => http<Json>(gw.baseUrl, "POST", "/api/v1/auth/login", { body: { username, password } });
	const refresh = (token: string) => http<Json>(gw.baseUrl, "POST", "/api/v1/auth/refresh", { body: { refresh_token: token } });

	it("login answers {access_token, refresh_token, token_type, expires_in, user} and the access token works", async () => {
		const before = await refreshRows();
		const res = await login("admin", ADMIN_PASSWORD);
		expect(res.status).toBe(200);
		expect(Object.keys(res.body).sort()).toEqual(["access_token", "expires_in", "refresh_token", "token_type", "user"]);
		expect(res.body).toMatchObject({ token_type: "Bearer", expires_in: 900 });
		expect(res.body.access_token).toEqual(expect.stringMatching(/^[\w-]+\.[\w-]+\.[\w-]+$/));
		expect(res.body.refresh_token).toEqual(expect.stringMatching(/^[\w-]+\.[\w-]+\.[\w-]+$/));
		expect(res.body.refresh_token).not.toBe(res.body.access_token);
		const user = res.body.user as Json;
		expect(user).toMatchObject({ id: adminId, username: "admin", roles: ["admin"], is_active: true });
		expect(user).not.toHaveProperty("password_hash");
		expect(user.last_login_at).toEqual(expect.stringMatching(/^\d{4}-\d\d-\d\dT.*Z$/));
		expect(res.text).not.toContain("$argon2");
		expect(await refreshRows()).toBe(before + 1);

		const who = await me(gw.baseUrl, String(res.body.access_token));
		expect(who.status).toBe(200);
		expect(who.body).toMatchObject({ type: "user", id: adminId, username: "admin", roles: ["admin"] });
		expect(who.body.permissions).toEqual(expect.arrayContaining(["users:read", "users:write", "apikeys:write", "chats:manage"]));
	});

	it("a wrong password and an unknown user get the same 401 body, and no session is created", async () => {
		const before = await refreshRows();
		const wrongPassword = await login("admin", "not-the-password");
		const unknownUser = await login("nobody-at-all", "not-the-password");
		expectApiError(wrongPassword, 401, "UNAUTHORIZED");
		expectApiError(unknownUser, 401, "UNAUTHORIZED");
		expect(unknownUser.body).toEqual(wrongPassword.body);
		expect(await refreshRows()).toBe(before);
	});

	it("usernames are case-insensitive at login", async () => {
		const res = await login("ADMIN", ADMIN_PASSWORD);
		expect(res.status).toBe(200);
		expect(res.body.user).toMatchObject({ id: adminId, username: "admin" });
		const user = await createUser(gw, admin, ["viewer"], "mixed.case-user");
		const mixed = await loginAction(gw.broker, "Mixed.CASE-User", user.password);
		expect(mixed.user).toMatchObject({ id: user.id, username: "mixed.case-user" });
	});

	it("refresh rotates; a spent refresh token revokes its whole family and is logged", async () => {
		const first = await loginAction(gw.broker, "admin", ADMIN_PASSWORD);
		const rotated = await refresh(first.refresh_token);
		expect(rotated.status).toBe(200);
		expect(rotated.body).toMatchObject({ token_type: "Bearer", expires_in: 900 });
		const second = rotated.body as unknown as LoginResult;
		expect(second.refresh_token).not.toBe(first.refresh_token);
		expect(second.access_token).not.toBe(first.access_token);
		expect((await me(gw.baseUrl, second.access_token)).status).toBe(200);

		const eventsBefore = await gw.runtime.db.models.SecurityEvent.count({ where: { type: "refresh_token_reuse" } });
		const rowsBefore = await refreshRows();
		const replayed = await refresh(first.refresh_token);
		expectApiError(replayed, 401, "UNAUTHORIZED");
		// The thief and the owner are told apart by nobody: the newer token of that login dies too.
		const newer = await refresh(second.refresh_token);
		expectApiError(newer, 401, "UNAUTHORIZED");
		expect(await refreshRows()).toBe(rowsBefore);

		const events = await gw.runtime.db.models.SecurityEvent.findAll({ where: { type: "refresh_token_reuse" }, raw: true });
		expect(events).toHaveLength(eventsBefore + 1);
		expect(events[events.length - 1]).toMatchObject({ type: "refresh_token_reuse" });
		expect(Number(events[events.length - 1]!.user_id)).toBe(adminId);
		const family = await gw.runtime.db.models.RefreshToken.findAll({ where: { user_id: adminId, revoked_reason: "reuse" }, raw: true });
		expect(family.length).toBeGreaterThanOrEqual(2);
	});

	it("two refreshes racing with one token: exactly one wins, and the family is revoked", async () => {
		const session = await loginAction(gw.broker, "admin", ADMIN_PASSWORD);
		const [a, b] = await Promise.all([refresh(session.refresh_token), refresh(session.refresh_token)]);
		expect([a.status, b.status].sort()).toEqual([200, 401]);
		const loser = a.status === 401 ? a : b;
		const winner = (a.status === 200 ? a : b).body as unknown as LoginResult;
		expectApiError(loser, 401, "UNAUTHORIZED");
		// The spent token came back, so the winner's new refresh token is part of a revoked family.
		expectApiError(await refresh(winner.refresh_token), 401, "UNAUTHORIZED");
	});

	it("a logout racing a refresh of the same token: the refresh is 'revoked', never a reuse alarm", async () => {
		const reuse = () => gw.runtime.db.models.SecurityEvent.count({ where: { type: "refresh_token_reuse" } });
		const alarmsBefore = await reuse();
		// A login each (argon2): a handful of rounds, the race is at the first statements of both.
		for (let i = 0; i < 8; i++) {
			const session = await loginAction(gw.broker, "admin", ADMIN_PASSWORD);
			const [, refreshed] = await Promise.all([http(gw.baseUrl, "POST", "/api/v1/auth/logout", { body: { refresh_token: session.refresh_token } }), refresh(session.refresh_token)]);
			if (refreshed.status === 401) expect(expectApiError(refreshed, 401, "UNAUTHORIZED").details).toEqual({ reason: "revoked" });
			else expect(refreshed.status).toBe(200);
		}
		expect(await reuse()).toBe(alarmsBefore);
	}, 90_000);

	it("an expired refresh token: refresh says so (reason expired), and logout with it still ends its login", async () => {
		const session = await loginAction(gw.broker, "admin", ADMIN_PASSWORD);
		const { jti, fam, sub } = jwt.decode(session.refresh_token) as Json;
		const { issuer, audience, secret } = gw.config.jwt;
		const now = Math.floor(Date.now() / 1000);
		const expired = jwt.sign({ typ: "refresh", fam, sub, jti, iss: issuer, aud: audience, iat: now - 120, exp: now - 60 }, secret, { algorithm: "HS256" });
		expect(expectApiError(await refresh(expired), 401, "UNAUTHORIZED").details).toEqual({ reason: "expired" });
		expect((await me(gw.baseUrl, session.access_token)).status).toBe(200);
		expect((await http(gw.baseUrl, "POST", "/api/v1/auth/logout", { body: { refresh_token: expired } })).status).toBe(204);
		expect(expectApiError(await me(gw.baseUrl, session.access_token), 401, "UNAUTHORIZED").details).toEqual({ reason: "revoked" });
	});

	it("logout answers 204 and that refresh token is refused afterwards", async () => {
		const session = await loginAction(gw.broker, "admin", ADMIN_PASSWORD);
		const out = await http(gw.baseUrl, "POST", "/api/v1/auth/logout", { body: { refresh_token: session.refresh_token } });
		expect(out.status).toBe(204);
		expect(out.text).toBe("");
		const revoked = await gw.runtime.db.models.RefreshToken.count({ where: { revoked_reason: "logout", revoked_at: { [Op.ne]: null } } });
		expect(revoked).toBeGreaterThanOrEqual(1);
		const rowsBefore = await refreshRows();
		expectApiError(await refresh(session.refresh_token), 401, "UNAUTHORIZED");
		expect(await refreshRows()).toBe(rowsBefore);
	});

	it("logout ends the access tokens of that login at once, not those of the user's other logins", async () => {
		const user = await createUser(gw, admin, ["viewer"]);
		const leaving = await loginAction(gw.broker, user.username, user.password);
		const rotated = await refresh(leaving.refresh_token);
		expect(rotated.status).toBe(200);
		const later = rotated.body as unknown as LoginResult;
		const staying = await loginAction(gw.broker, user.username, user.password);
		for (const token of [leaving.access_token, later.access_token, staying.access_token]) expect((await me(gw.baseUrl, token)).status).toBe(200);

		expect((await http(gw.baseUrl, "POST", "/api/v1/auth/logout", { body: { refresh_token: later.refresh_token } })).status).toBe(204);
		// Both access tokens of that login (before and after its rotation) are refused, with a reason.
		for (const token of [leaving.access_token, later.access_token]) expect(expectApiError(await me(gw.baseUrl, token), 401, "UNAUTHORIZED").message).toMatch(/revoked/i);
		expect((await me(gw.baseUrl, staying.access_token)).body).toMatchObject({ type: "user", id: user.id });
		expectApiError(await refresh(leaving.refresh_token), 401, "UNAUTHORIZED");
		expect((await refresh(staying.refresh_token)).status).toBe(200);
	});

	it("a spent refresh token presented again ends the access tokens of its login too", async () => {
		const user = await createUser(gw, admin, ["viewer"]);
		const first = await loginAction(gw.broker, user.username, user.password);
		const second = (await refresh(first.refresh_token)).body as unknown as LoginResult;
		expect((await me(gw.baseUrl, second.access_token)).status).toBe(200);
		expectApiError(await refresh(first.refresh_token), 401, "UNAUTHORIZED");
		// Whoever held the copy cannot go on with an access token taken before the reuse was noticed.
		expectApiError(await me(gw.baseUrl, first.access_token), 401, "UNAUTHORIZED");
		expectApiError(await me(gw.baseUrl, second.access_token), 401, "UNAUTHORIZED");
		// The user's other logins and new ones are not affected.
		expect((await me(gw.baseUrl, user.token)).status).toBe(200);
		const again = await loginAction(gw.broker, user.username, user.password);
		expect((await me(gw.baseUrl, again.access_token)).status).toBe(200);
	});

	it("a new password ends every login of the user, access tokens included; logging in with it works", async () => {
		const user = await createUser(gw, admin, ["viewer"]);
		const other = await loginAction(gw.broker, user.username, user.password);
		expect((await me(gw.baseUrl, other.access_token)).status).toBe(200);
		const newPassword = "a-brand-new-password-for-this-user";
		expect((await api(gw.baseUrl, "PATCH", `/users/${user.id}`, admin, { password: newPassword })).status).toBe(200);
		for (const token of [user.token, other.access_token]) expectApiError(await me(gw.baseUrl, token), 401, "UNAUTHORIZED");
		expectApiError(await refresh(other.refresh_token), 401, "UNAUTHORIZED");
		const fresh = await loginAction(gw.broker, user.username, newPassword);
		expect((await me(gw.baseUrl, fresh.access_token)).body).toMatchObject({ type: "user", id: user.id });
	});

	it("logout with something that is not a refresh token is 401", async () => {
		const res = await http(gw.baseUrl, "POST", "/api/v1/auth/logout", { body: { refresh_token: "not.a.token" } });
		expectApiError(res, 401, "UNAUTHORIZED");
	});

	it("an access token is not a refresh token, and a refresh token is not an access token", async () => {
		const session = await loginAction(gw.broker, "admin", ADMIN_PASSWORD);
		const rowsBefore = await refreshRows();
		expectApiError(await refresh(session.access_token), 401, "UNAUTHORIZED");
		expect(await refreshRows()).toBe(rowsBefore);
		expectApiError(await me(gw.baseUrl, session.refresh_token), 401, "UNAUTHORIZED");
		// Both are fine where they belong.
		expect((await me(gw.baseUrl, session.access_token)).status).toBe(200);
		expect((await refresh(session.refresh_token)).status).toBe(200);
	});

	describe("forged access tokens", () => {
		const now = () => Math.floor(Date.now() / 1000);
		function claims(overrides: Json = {}): Json {
			const { issuer, audience } = gw.config.jwt;
			const all: Json = { sub: String(adminId), typ: "access", jti: randomUUID(), iss: issuer, aud: audience, iat: now(), exp: now() + 600, ...overrides };
			for (const [k, v] of Object.entries(all)) if (v === undefined) delete all[k];
			return all;
		}
		const sign = (payload: Json, secret = gw.config.jwt.secret, algorithm: jwt.Algorithm = "HS256") => jwt.sign(payload, secret, { algorithm });

		// Tokens issued before access tokens named their login carry no `fam`: they last until they expire.
		it("a token signed like the gateway's own is accepted (the forging below is otherwise right)", async () => {
			const res = await me(gw.baseUrl, sign(claims()));
			expect(res.status).toBe(200);
			expect(res.body).toMatchObject({ type: "user", id: adminId });
		});

		it("a token naming a login the database has no record of (signed before a restore from a backup) is 401 revoked, though its user id exists", async () => {
			const res = await me(gw.baseUrl, sign(claims({ fam: randomUUID().replace(/-/g, "") })));
			expect(expectApiError(res, 401, "UNAUTHORIZED").details).toEqual({ reason: "revoked" });
		});

		const cases: Array<[string, () => string]> = [
			["alg none", () => jwt.sign(claims(), "", { algorithm: "none" })],
			["HS512 with the right secret", () => sign(claims(), gw.config.jwt.secret, "HS512")],
			["HS256 with a wrong key", () => sign(claims(), "a-wrong-secret-that-is-long-enough-0123456789")],
			["an expired token", () => sign(claims({ iat: now() - 1200, exp: now() - 300 }))],
			["a wrong issuer", () => sign(claims({ iss: "someone-else" }))],
			["a wrong audience", () => sign(claims({ aud: "someone-else" }))],
			["no jti", () => sign(claims({ jti: undefined }))],
			["no typ", () => sign(claims({ typ: undefined }))],
			["a refresh typ", () => sign(claims({ typ: "refresh", fam: "f".repeat(32) }))],
			["no expiry (it would never expire)", () => sign(claims({ exp: undefined }))],
			["an issue time an hour ahead", () => sign(claims({ iat: now() + 3_600, exp: now() + 4_200 }))],
		];
		it.each(cases)("%s is 401 on GET /auth/me", async (_name, make) => {
			expectApiError(await me(gw.baseUrl, make()), 401, "UNAUTHORIZED");
		});

		it("a tampered payload (another sub, the original signature) is 401", async () => {
			const viewer = await createUser(gw, admin, ["viewer"]);
			expect((await me(gw.baseUrl, viewer.token)).body).toMatchObject({ id: viewer.id });
			const [header, payload, signature] = viewer.token.split(".");
			const decoded = JSON.parse(Buffer.from(payload!, "base64url").toString()) as Json;
			const escalated = Buffer.from(JSON.stringify({ ...decoded, sub: String(adminId) })).toString("base64url");
			expectApiError(await me(gw.baseUrl, `${header}.${escalated}.${signature}`), 401, "UNAUTHORIZED");
		});
	});

	it("a disabled user loses access at once (401 with reason user_disabled, as documented), and its refresh token with it", async () => {
		const user = await createUser(gw, admin, ["operator"]);
		const session = await loginAction(gw.broker, user.username, user.password);
		expect((await me(gw.baseUrl, user.token)).status).toBe(200);
		const patched = await api(gw.baseUrl, "PATCH", `/users/${user.id}`, admin, { is_active: false });
		expect(patched.status).toBe(200);
		expect(patched.body).toMatchObject({ id: user.id, is_active: false });
		// Disabling also ends the user's logins: the reason given is the user's, not "revoked".
		for (const token of [user.token, session.access_token]) {
			expect(expectApiError(await me(gw.baseUrl, token), 401, "UNAUTHORIZED").details).toMatchObject({ reason: "user_disabled" });
		}
		expectApiError(await refresh(session.refresh_token), 401, "UNAUTHORIZED");
		await expect(loginAction(gw.broker, user.username, user.password)).rejects.toMatchObject({ code: 401, type: "UNAUTHORIZED" });
	});

	it("a deleted user loses access at once", async () => {
		const user = await createUser(gw, admin, ["viewer"]);
		expect((await me(gw.baseUrl, user.token)).status).toBe(200);
		expect((await api(gw.baseUrl, "DELETE", `/users/${user.id}`, admin)).status).toBe(204);
		expectApiError(await me(gw.baseUrl, user.token), 401, "UNAUTHORIZED");
		expect(await gw.runtime.db.models.User.findByPk(user.id)).toBeNull();
	});

	it("no credential is 401", async () => {
		const res = await http(gw.baseUrl, "GET", "/api/v1/auth/me");
		expectApiError(res, 401, "UNAUTHORIZED");
	});

	it("an Authorization header of another scheme is 401, even with valid credentials inside", async () => {
		const basic = Buffer.from(`admin:${ADMIN_PASSWORD}`).toString("base64");
		expectApiError(await http(gw.baseUrl, "GET", "/api/v1/auth/me", { headers: { authorization: `Basic ${basic}` } }), 401, "UNAUTHORIZED");
		expectApiError(await http(gw.baseUrl, "GET", "/api/v1/auth/me", { headers: { authorization: `Token ${admin}` } }), 401, "UNAUTHORIZED");
		expect((await http(gw.baseUrl, "GET", "/api/v1/auth/me", { headers: bearer(admin) })).status).toBe(200);
	});

	it("garbage as a Bearer token is 401", async () => {
		expectApiError(await me(gw.baseUrl, "not-a-jwt"), 401, "UNAUTHORIZED");
	});
});
