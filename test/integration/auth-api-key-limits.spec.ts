/**
 * What a user may mint in keys: no key faster than its creator (admins and the CLI excepted), and at
 * most API_KEYS_PER_USER active keys per user, each being a rate-limit bucket and a live-connection
 * allowance of its own. A refusal stores nothing.
 */
import { SYSTEM_PRINCIPAL } from "../../services/auth/principal";
import type { TestGateway } from "../support/harness";
import { adminToken, api, createKey, createUser, errorFields, expectApiError, startAuthGateway, type TestUser } from "../support/auth";

const KEYS_PER_USER = 3;
const RATE_LIMIT_DEFAULT = 100;

describe("API key limits", () => {
	let gw: TestGateway;
	let admin: string;

	beforeAll(async () => {
		gw = await startAuthGateway({ env: { RATE_LIMIT_DEFAULT: String(RATE_LIMIT_DEFAULT), API_KEYS_PER_USER: String(KEYS_PER_USER) } });
		admin = await adminToken(gw);
	});
	afterAll(() => gw.stop());

	const keysOf = (user: TestUser) => gw.runtime.db.models.ApiKey.count({ where: { user_id: user.id } });

	it("a user (JWT) cannot give a new key a rate_limit above its own: 400 VALIDATION_ERROR naming rate_limit, nothing stored", async () => {
		const operator = await createUser(gw, admin, ["operator"]);
		const res = await api(gw.baseUrl, "POST", "/apikeys", operator.token, { name: "fast", rate_limit: 100_000 });
		expectApiError(res, 400, "VALIDATION_ERROR");
		expect(errorFields(res)).toEqual(["rate_limit"]);
		expect(await keysOf(operator)).toBe(0);
		// Its own limit, or less, is fine; without one the key takes the owner's.
		expect((await createKey(gw.baseUrl, operator.token, { rate_limit: RATE_LIMIT_DEFAULT })).rate_limit).toBe(RATE_LIMIT_DEFAULT);
	});

	it("an admin may give a key (its own or a user's) any rate_limit, and so may the CLI (the system principal)", async () => {
		const viewer = await createUser(gw, admin, ["viewer"]);
		expect((await createKey(gw.baseUrl, admin, { rate_limit: 100_000, user_id: viewer.id })).rate_limit).toBe(100_000);
		const fromCli = await gw.broker.call<{ rate_limit: number }, Record<string, unknown>>("auth.createApiKey", { user_id: viewer.id, name: "cli", rate_limit: 50_000 }, { meta: { principal: SYSTEM_PRINCIPAL } });
		expect(fromCli.rate_limit).toBe(50_000);
	});

	it("rotating a key faster than the rotating user is 400 naming rate_limit and keeps the old secret; an admin may rotate it", async () => {
		const operator = await createUser(gw, admin, ["operator"]);
		const fast = await createKey(gw.baseUrl, admin, { rate_limit: 5_000, user_id: operator.id });
		const before = await gw.runtime.db.models.ApiKey.findByPk(fast.id, { raw: true });
		const res = await api(gw.baseUrl, "POST", `/apikeys/${fast.id}/rotate`, operator.token);
		expectApiError(res, 400, "VALIDATION_ERROR");
		expect(errorFields(res)).toEqual(["rate_limit"]);
		expect((await gw.runtime.db.models.ApiKey.findByPk(fast.id, { raw: true }))!.key_hash).toBe(before!.key_hash);
		// Its owner may still revoke it; an admin may rotate it.
		expect((await api(gw.baseUrl, "POST", `/apikeys/${fast.id}/rotate`, admin)).status).toBe(200);
		expect((await api(gw.baseUrl, "DELETE", `/apikeys/${fast.id}`, operator.token)).status).toBe(204);
	});

	it(`a user holds at most API_KEYS_PER_USER (${KEYS_PER_USER}) active keys: the next is 409 CONFLICT naming api_keys and the limit, nothing stored`, async () => {
		const operator = await createUser(gw, admin, ["operator"]);
		const made = [];
		for (let i = 0; i < KEYS_PER_USER; i++) made.push(await createKey(gw.baseUrl, operator.token, { name: `k${i}` }));
		// A key of the user's makes no difference: the count is the owner's.
		const res = await api(gw.baseUrl, "POST", "/apikeys", made[0]!.key, { name: "one too many" });
		const error = expectApiError(res, 409, "CONFLICT");
		expect(error.details).toEqual({ field: "api_keys", limit: KEYS_PER_USER });
		expect(error.message).toContain("API_KEYS_PER_USER");
		expect(await keysOf(operator)).toBe(KEYS_PER_USER);
		// Nor does an admin creating it for them.
		expectApiError(await api(gw.baseUrl, "POST", "/apikeys", admin, { name: "for them", user_id: operator.id }), 409, "CONFLICT");

		// Revoked and expired keys do not count.
		expect((await api(gw.baseUrl, "DELETE", `/apikeys/${made[1]!.id}`, operator.token)).status).toBe(204);
		await gw.runtime.db.models.ApiKey.update({ expires_at: new Date(Date.now() - 1_000) }, { where: { id: made[2]!.id } });
		await createKey(gw.baseUrl, operator.token, { name: "after revoke" });
		await createKey(gw.baseUrl, operator.token, { name: "after expiry" });
		expectApiError(await api(gw.baseUrl, "POST", "/apikeys", operator.token, { name: "full again" }), 409, "CONFLICT");
	});

	it("concurrent creates for one user never take it past the cap", async () => {
		const operator = await createUser(gw, admin, ["operator"]);
		const answers = await Promise.all(Array.from({ length: 8 }, (_, i) => api(gw.baseUrl, "POST", "/apikeys", operator.token, { name: `race-${i}` })));
		const statuses = answers.map((r) => r.status).sort();
		expect(statuses).toEqual([...Array(KEYS_PER_USER).fill(201), ...Array(8 - KEYS_PER_USER).fill(409)]);
		expect(await keysOf(operator)).toBe(KEYS_PER_USER);
	});
});
