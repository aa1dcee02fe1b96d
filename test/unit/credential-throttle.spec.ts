import { AUTH_FAILURES_PER_MINUTE, resolveThrottled } from "../../lib/credential-throttle";
import { fail } from "../../lib/errors";
import { createMemoryState } from "../../lib/state/memory";

const rejection = (p: Promise<unknown>) => p.then(() => { throw new Error("resolved"); }, (err: unknown) => err as { type?: string; code?: number; data?: { retry_after?: number } });

describe("resolveThrottled (every entry point's bad-credential throttle)", () => {
	it("refuses an address after 60 refused credentials in a minute, without asking auth, and counts nothing else", async () => {
		const state = createMemoryState();
		const refuse = jest.fn(() => Promise.reject(fail.unauthorized()));
		for (let i = 0; i < AUTH_FAILURES_PER_MINUTE; i++) expect((await rejection(resolveThrottled(state, "10.0.0.1", refuse))).type).toBe("UNAUTHORIZED");
		const ok = jest.fn(() => Promise.resolve("principal"));
		const throttled = await rejection(resolveThrottled(state, "10.0.0.1", ok));
		expect(throttled).toMatchObject({ type: "RATE_LIMITED", code: 429 });
		expect(throttled.data!.retry_after).toBeGreaterThanOrEqual(1);
		expect(ok).not.toHaveBeenCalled();
		// Another address is not affected; auth being away (503) does not count against anyone.
		await expect(resolveThrottled(state, "10.0.0.2", ok)).resolves.toBe("principal");
		const away = () => Promise.reject(fail.unavailable("auth"));
		for (let i = 0; i < AUTH_FAILURES_PER_MINUTE + 5; i++) expect((await rejection(resolveThrottled(state, "10.0.0.3", away))).type).toBe("UNAVAILABLE");
		await expect(resolveThrottled(state, "10.0.0.3", ok)).resolves.toBe("principal");
		await state.close();
	});

	it("does not count a credential that verified but ended (expired, revoked, its user disabled), here or after a transporter hop", async () => {
		const state = createMemoryState();
		const ended = [fail.credentialEnded("Token expired", "expired"), fail.credentialEnded("API key revoked", "revoked"), fail.credentialEnded("User is disabled or deleted", "user_disabled")];
		// What a GatewayError thrown on another node arrives as: name, code, type and data.
		const hopped = { name: "GatewayError", message: "Token expired", code: 401, type: "UNAUTHORIZED", data: { reason: "expired" } };
		for (let i = 0; i < AUTH_FAILURES_PER_MINUTE; i++) {
			for (const err of [...ended, hopped]) expect((await rejection(resolveThrottled(state, "10.0.0.4", () => Promise.reject(err)))).type).toBe("UNAUTHORIZED");
		}
		await expect(resolveThrottled(state, "10.0.0.4", () => Promise.resolve("principal"))).resolves.toBe("principal");
		// The ended ones carry their reason to the client; a credential that does not verify carries none and counts.
		expect(ended.map((err) => err.data)).toEqual([{ reason: "expired" }, { reason: "revoked" }, { reason: "user_disabled" }]);
		for (let i = 0; i < AUTH_FAILURES_PER_MINUTE; i++) await rejection(resolveThrottled(state, "10.0.0.4", () => Promise.reject(fail.unauthorized("Invalid token"))));
		expect((await rejection(resolveThrottled(state, "10.0.0.4", () => Promise.resolve("principal")))).type).toBe("RATE_LIMITED");
		await state.close();
	});
});
