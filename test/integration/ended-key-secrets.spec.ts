/**
 * A key secret that verified once and has ended without a row left to say so (replaced by a
 * rotation, or deleted with its user) is refused as ended (401 with details.reason), not as a guess:
 * a client still polling with it does not count against its address's bad-credential limit (60 a
 * minute), so it cannot lock out the others behind that address.
 */
import type { TestGateway } from "../support/harness";
import { adminToken, api, createKey, createUser, startAuthGateway } from "../support/auth";

const BAD_CREDENTIALS_PER_MINUTE = 60;

describe("ended API key secrets", () => {
	let gw: TestGateway;
	let admin: string;
	let address = 10;

	beforeAll(async () => {
		gw = await startAuthGateway({ env: { TRUST_PROXY: "127.0.0.1" } });
		admin = await adminToken(gw);
	});
	afterAll(() => gw.stop());

	/** GET /auth/me with an X-API-Key from one client address. */
	const me = (key: string, from: string) => fetch(`${gw.baseUrl}/api/v1/auth/me`, { headers: { "x-api-key": key, "x-forwarded-for": from } });

	async function expectEndedEveryTime(key: string, from: string, reason: string, message: string): Promise<void> {
		for (let i = 0; i < BAD_CREDENTIALS_PER_MINUTE + 10; i++) {
			const res = await me(key, from);
			const body = (await res.json()) as { error: { code: string; message: string; details?: { reason?: string } } };
			expect([res.status, body.error.code, body.error.message, body.error.details?.reason]).toEqual([401, "UNAUTHORIZED", message, reason]);
		}
	}

	it("the keys of a deleted user: 401 user_disabled every time, never 429, and the address keeps its other clients", async () => {
		const from = `198.51.100.${++address}`;
		const user = await createUser(gw, admin, ["operator"]);
		const key = await createKey(gw.baseUrl, user.token, { name: "left-behind" });
		const revokedBefore = await createKey(gw.baseUrl, user.token, { name: "revoked-then-deleted" });
		expect((await me(key.key, from)).status).toBe(200);
		expect((await api(gw.baseUrl, "DELETE", `/apikeys/${revokedBefore.id}`, user.token)).status).toBe(204);
		expect((await api(gw.baseUrl, "DELETE", `/users/${user.id}`, admin)).status).toBe(204);

		await expectEndedEveryTime(key.key, from, "user_disabled", "The API key's user is disabled or deleted");
		await expectEndedEveryTime(revokedBefore.key, from, "user_disabled", "The API key's user is disabled or deleted");
		const other = await createKey(gw.baseUrl, admin, { name: "same-address" });
		expect((await me(other.key, from)).status).toBe(200);
	}, 60_000);

	it("a secret replaced by a rotation: 401 revoked every time, never 429; the new secret works", async () => {
		const from = `198.51.100.${++address}`;
		const key = await createKey(gw.baseUrl, admin, { name: "rotated" });
		const rotated = await api(gw.baseUrl, "POST", `/apikeys/${key.id}/rotate`, admin);
		expect(rotated.status).toBe(200);
		await expectEndedEveryTime(key.key, from, "revoked", "API key revoked: its secret was replaced by a rotation");
		expect((await me(String(rotated.body.key), from)).status).toBe(200);
	}, 60_000);

	it("a rotated key's prefix with another secret is a guess: it counts, and the address is refused 429 past the limit", async () => {
		const from = `198.51.100.${++address}`;
		const key = await createKey(gw.baseUrl, admin, { name: "guessed-at" });
		expect((await api(gw.baseUrl, "POST", `/apikeys/${key.id}/rotate`, admin)).status).toBe(200);
		const guess = key.key.slice(0, -4) + (key.key.endsWith("AAAA") ? "BBBB" : "AAAA");
		for (let i = 0; i < BAD_CREDENTIALS_PER_MINUTE; i++) {
			const res = await me(`${guess.slice(0, -4)}${String(i).padStart(4, "0")}`, from);
			expect([res.status, ((await res.json()) as { error: { message: string } }).error.message]).toEqual([401, "Invalid API key"]);
		}
		expect((await me(key.key, from)).status).toBe(429);
	}, 60_000);
});
