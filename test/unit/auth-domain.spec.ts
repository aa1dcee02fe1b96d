import jwt from "jsonwebtoken";
import { apiKeyPrefix, generateApiKey, keyState, looksLikeApiKey } from "../../services/auth/api-keys";
import { failureDelayMs, LOGIN_LIMITS } from "../../services/auth/login-throttle";
import { apiKeyPrincipal, hasPermission, userPrincipal } from "../../services/auth/principal";
import { allows, chatsWith } from "../../services/auth/grants";
import { issueToken, verifyToken } from "../../services/auth/tokens";

const settings = { secret: "s".repeat(40), issuer: "iss", audience: "aud", accessTtlSeconds: 900, refreshTtlSeconds: 3600 };

describe("tokens", () => {
	it("issues and verifies an access token", () => {
		const { token, jti } = issueToken(settings, "access", 7);
		expect(verifyToken(settings, token, "access")).toMatchObject({ userId: 7, jti, typ: "access", sub: "7" });
	});

	it("keeps access and refresh tokens apart", () => {
		const access = issueToken(settings, "access", 7).token;
		const refresh = issueToken(settings, "refresh", 7, "fam").token;
		expect(() => verifyToken(settings, access, "refresh")).toThrow("Invalid token");
		expect(() => verifyToken(settings, refresh, "access")).toThrow("Invalid token");
		expect(verifyToken(settings, refresh, "refresh").fam).toBe("fam");
	});

	const base = { typ: "access", sub: "7", jti: "j", iss: "iss", aud: "aud" };
	it.each([
		["alg none", jwt.sign(base, "", { algorithm: "none" })],
		["another algorithm", jwt.sign(base, settings.secret, { algorithm: "HS512" })],
		["a wrong key", jwt.sign(base, "w".repeat(40), { algorithm: "HS256" })],
		["a wrong issuer", jwt.sign({ ...base, iss: "other" }, settings.secret)],
		["a wrong audience", jwt.sign({ ...base, aud: "other" }, settings.secret)],
		["no jti", jwt.sign({ typ: "access", sub: "7", iss: "iss", aud: "aud" }, settings.secret)],
		["a non-numeric subject", jwt.sign({ ...base, sub: "admin" }, settings.secret)],
		["garbage", "not.a.jwt"],
		// Signed with the right key, but never issued here: it would never expire, or was issued an hour from now.
		["no expiry", jwt.sign(base, settings.secret)],
		["an issue time an hour ahead", jwt.sign({ ...base, iat: Math.floor(Date.now() / 1000) + 3_600, exp: Math.floor(Date.now() / 1000) + 7_200 }, settings.secret)],
	])("refuses %s", (_name, token) => {
		expect(() => verifyToken(settings, token, "access")).toThrow("Invalid token");
	});

	it("refuses a tampered payload", () => {
		const [header, , signature] = issueToken(settings, "access", 7).token.split(".");
		const forged = Buffer.from(JSON.stringify({ ...base, sub: "1", exp: 9_999_999_999 })).toString("base64url");
		expect(() => verifyToken(settings, `${header}.${forged}.${signature}`, "access")).toThrow("Invalid token");
	});

	it("says when a token expired", () => {
		const expired = jwt.sign({ ...base, exp: Math.floor(Date.now() / 1000) - 10 }, settings.secret);
		expect(() => verifyToken(settings, expired, "access")).toThrow("Token expired");
	});
});

describe("API keys", () => {
	it("are tgw_ + a 16-hex public prefix + 32 random bytes", () => {
		const { key, prefix } = generateApiKey();
		expect(key).toMatch(/^tgw_[0-9a-f]{16}[A-Za-z0-9_-]{43}$/);
		expect(Buffer.from(key.slice(20), "base64url")).toHaveLength(32);
		expect(apiKeyPrefix(key)).toBe(prefix);
		expect(looksLikeApiKey(key)).toBe(true);
		expect(generateApiKey().key).not.toBe(key);
	});

	it("finds no prefix in what is not a key", () => {
		expect(apiKeyPrefix("tgw_short")).toBeNull();
		expect(apiKeyPrefix("eyJhbGciOi.x.y")).toBeNull();
		expect(looksLikeApiKey("eyJhbGciOi.x.y")).toBe(false);
	});

	it("knows active, revoked and expired", () => {
		expect(keyState({ revoked_at: null, expires_at: null })).toBe("active");
		expect(keyState({ revoked_at: new Date(), expires_at: null })).toBe("revoked");
		expect(keyState({ revoked_at: null, expires_at: new Date(Date.now() - 1) })).toBe("expired");
		expect(keyState({ revoked_at: null, expires_at: "2000-01-01 00:00:00.000 +00:00" as unknown as Date })).toBe("expired");
	});
});

describe("login throttle numbers", () => {
	it("slows from the 3rd failure, doubling, at most 4 s", () => {
		expect([0, 1, 2].map(failureDelayMs)).toEqual([0, 0, 0]);
		expect([3, 4, 5, 6, 7, 8, 20].map(failureDelayMs)).toEqual([250, 500, 1000, 2000, 4000, 4000, 4000]);
		expect(LOGIN_LIMITS.lockAfterUsernameFailures).toBe(10);
	});
});

describe("principals and grants", () => {
	const admin = userPrincipal({ id: 1, username: "root" }, ["admin"], ["users:read", "chats:read", "messages:read"]);
	const viewer = userPrincipal({ id: 2, username: "v" }, ["viewer"], ["chats:read", "messages:read"]);

	it("a key holds its owner's permissions narrowed to its scopes", () => {
		const key = apiKeyPrincipal({ id: 9, name: "k", scopes: ["chats:read"], rate_limit: 5 }, admin);
		expect(key).toMatchObject({ type: "api_key", id: 9, user_id: 1, permissions: ["chats:read"], rate_limit: 5, is_admin: false });
		expect(hasPermission(key, "users:read")).toBe(false);
		const unscoped = apiKeyPrincipal({ id: 10, name: "k", scopes: null, rate_limit: null }, admin);
		expect(unscoped).toMatchObject({ is_admin: true, rate_limit: 100 });
		expect(apiKeyPrincipal({ id: 11, name: "k", scopes: ["users:read"], rate_limit: null }, viewer).permissions).toEqual([]);
	});

	it("admins pass every chat check; others need the right on that chat", () => {
		const grants = new Map([[5, { can_read: true, can_send: false, can_manage: false }]]);
		expect(allows(admin, null, "can_manage")).toBe(true);
		expect(allows(viewer, grants.get(5), "can_read")).toBe(true);
		expect(allows(viewer, grants.get(5), "can_send")).toBe(false);
		expect(allows(viewer, grants.get(6), "can_read")).toBe(false);
		expect(chatsWith(grants, "can_read")).toEqual([5]);
	});
});
