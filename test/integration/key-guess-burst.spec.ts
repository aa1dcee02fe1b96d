/**
 * API key guesses sent all at once: each one with a real key's (public) prefix costs an argon2
 * check, and the address throttle counts failures only as they come back, so a burst got every
 * guess checked (400 took 17 s of CPU). A node runs 2 argon2 checks at once with 100 waiting; the
 * rest are refused RATE_LIMITED at once. Genuine keys used for the first time all at once share one
 * check. Logins from many addresses at once (each within its own address's limit) are bounded alike.
 */
import { randomBytes } from "node:crypto";
import argon2 from "argon2";
import { adminToken, createKey, resolvePrincipal, startAuthGateway } from "../support/auth";
import type { TestGateway } from "../support/harness";

const outcome = (p: Promise<unknown>) =>
	p.then(
		() => "ok",
		(err: { type?: string }) => err.type ?? "?",
	);

/** Each answer is RATE_LIMITED (refused before a check) or UNAUTHORIZED (checked): some of each, one argon2 call per check. */
function expectRefusedOrChecked(answers: string[], checks: jest.SpyInstance): void {
	const counts = answers.reduce<Record<string, number>>((tally, a) => ({ ...tally, [a]: (tally[a] ?? 0) + 1 }), {});
	// How many are refused depends on how many checks ended before the last ones came.
	expect(Object.keys(counts).sort()).toEqual(["RATE_LIMITED", "UNAUTHORIZED"]);
	expect(counts.RATE_LIMITED).toBeGreaterThan(0);
	expect(checks).toHaveBeenCalledTimes(counts.UNAUTHORIZED!);
}

describe("a burst of API key guesses", () => {
	let gw: TestGateway;
	let key: string;

	beforeAll(async () => {
		gw = await startAuthGateway();
		key = (await createKey(gw.baseUrl, await adminToken(gw), { name: "guessed" })).key;
	}, 60_000);
	afterAll(() => gw.stop());

	/** The key's prefix with a made-up secret: it finds the key's row, and only argon2 can refuse it. */
	const guess = () => `${key.slice(0, 20)}${randomBytes(32).toString("base64url").slice(0, 43)}`;

	it("past 2 checking and 100 waiting, a guess is refused RATE_LIMITED without a check; the rest are UNAUTHORIZED", async () => {
		const checks = jest.spyOn(argon2, "verify");
		try {
			expectRefusedOrChecked(await Promise.all(Array.from({ length: 150 }, () => outcome(resolvePrincipal(gw.broker, guess())))), checks);
		} finally {
			checks.mockRestore();
		}
		// Drained: the next guess is checked again.
		expect(await outcome(resolvePrincipal(gw.broker, guess()))).toBe("UNAUTHORIZED");
	});

	it("a genuine key used for the first time by many callers at once is checked once, and every caller gets its principal", async () => {
		const fresh = (await createKey(gw.baseUrl, await adminToken(gw), { name: "first-use" })).key;
		const checks = jest.spyOn(argon2, "verify");
		try {
			const answers = await Promise.all(Array.from({ length: 300 }, () => outcome(resolvePrincipal(gw.broker, fresh))));
			expect(new Set(answers)).toEqual(new Set(["ok"]));
			expect(checks).toHaveBeenCalledTimes(1);
		} finally {
			checks.mockRestore();
		}
	});
});

describe("a burst of logins from many addresses", () => {
	let gw: TestGateway;

	beforeAll(async () => {
		gw = await startAuthGateway();
	}, 60_000);
	afterAll(() => gw.stop());

	it("past 2 checking and 100 waiting, a login is refused RATE_LIMITED without a check; the rest are UNAUTHORIZED", async () => {
		const checks = jest.spyOn(argon2, "verify");
		const login = (i: number) =>
			gw.broker.call("auth.login", { username: `nobody-${i}`, password: "wrong password" }, { meta: { clientIp: `198.18.${i >> 8}.${i & 255}` } });
		try {
			expectRefusedOrChecked(await Promise.all(Array.from({ length: 150 }, (_, i) => outcome(login(i)))), checks);
		} finally {
			checks.mockRestore();
		}
		expect(await outcome(login(1_000))).toBe("UNAUTHORIZED");
	});

	it("hashing a new secret (an API key) has places of its own: a login flood does not refuse it", async () => {
		const token = await adminToken(gw);
		const flood = Array.from({ length: 150 }, (_, i) =>
			outcome(gw.broker.call("auth.login", { username: `flood-${i}`, password: "wrong password" }, { meta: { clientIp: `198.19.${i >> 8}.${i & 255}` } })),
		);
		const created = await createKey(gw.baseUrl, token, { name: "made during a login flood" });
		expect(created.key).toMatch(/^tgw_/);
		expect(await Promise.all(flood)).toContain("RATE_LIMITED");
	});
});
