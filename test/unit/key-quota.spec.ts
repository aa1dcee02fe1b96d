/** services/auth/key-quota.ts: how fast a new or rotated key may be, by who makes it. */
import { checkRotatable, keyLimitsFor } from "../../services/auth/key-quota";
import { SYSTEM_PRINCIPAL, type Principal } from "../../services/auth/principal";

const operator: Principal = { type: "user", id: 2, user_id: 2, username: "op", roles: ["operator"], permissions: ["apikeys:write"], rate_limit: 100, is_admin: false };
const admin: Principal = { ...operator, id: 1, user_id: 1, roles: ["admin"], is_admin: true };
const operatorKey: Principal = { ...operator, type: "api_key", id: 9, rate_limit: 20, expires_at: Date.UTC(2100, 0, 1) };

const fieldsOf = (run: () => unknown) => {
	try {
		run();
	} catch (err) {
		return ((err as { data?: { fields?: Array<{ field: string }> } }).data?.fields ?? []).map((f) => f.field);
	}
	return [];
};

describe("keyLimitsFor", () => {
	it("holds a user's new key to the user's own rate limit; without one the key takes the owner's (null)", () => {
		expect(fieldsOf(() => keyLimitsFor(operator, null, 101))).toEqual(["rate_limit"]);
		expect(keyLimitsFor(operator, null, 100)).toEqual({ expires_at: null, rate_limit: 100 });
		expect(keyLimitsFor(operator, null, null)).toEqual({ expires_at: null, rate_limit: null });
	});

	it("lets admins and the system principal (the CLI) give any rate", () => {
		expect(keyLimitsFor(admin, null, 100_000).rate_limit).toBe(100_000);
		expect(keyLimitsFor(SYSTEM_PRINCIPAL, null, 100_000).rate_limit).toBe(100_000);
	});

	it("holds a key's new key to its maker's rate and expiry, and gives it both by default", () => {
		expect(fieldsOf(() => keyLimitsFor(operatorKey, null, 21))).toEqual(["rate_limit"]);
		expect(fieldsOf(() => keyLimitsFor(operatorKey, Date.UTC(2101, 0, 1), null))).toEqual(["expires_at"]);
		expect(keyLimitsFor(operatorKey, null, null)).toEqual({ expires_at: operatorKey.expires_at, rate_limit: 20 });
	});
});

describe("checkRotatable", () => {
	it("refuses a user rotating a key faster than itself (naming rate_limit), not an admin", () => {
		expect(fieldsOf(() => checkRotatable(operator, 101))).toEqual(["rate_limit"]);
		expect(fieldsOf(() => checkRotatable(operator, 100))).toEqual([]);
		expect(fieldsOf(() => checkRotatable(operator, null))).toEqual([]);
		expect(fieldsOf(() => checkRotatable(admin, 100_000))).toEqual([]);
	});
});
