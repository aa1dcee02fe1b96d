/** lib/rate-limit.ts: the per-principal bucket every entry point charges. */
import { GatewayError } from "../../lib/errors";
import { refuseWhenEmpty, takePrincipalToken } from "../../lib/rate-limit";
import type { BucketResult } from "../../lib/state";
import { createMemoryState } from "../../lib/state/memory";
import { userPrincipal } from "../../services/auth/principal";

function logger() {
	const lines: string[] = [];
	return { lines, warn: (message: unknown) => lines.push(String(message)) };
}

describe("per-principal rate limit", () => {
	it("takes tokens from one bucket per principal, then refuses with the seconds until the next", async () => {
		let now = 1_000_000;
		const state = createMemoryState(() => now);
		const alice = userPrincipal({ id: 1, username: "alice" }, ["viewer"], [], 2);
		const bob = userPrincipal({ id: 2, username: "bob" }, ["viewer"], [], 2);
		const log = logger();
		const taken: Array<BucketResult | null> = [];
		for (let i = 0; i < 3; i++) taken.push(await takePrincipalToken(state, log, alice, "requests"));
		expect(taken.map((b) => b?.allowed)).toEqual([true, true, false]);
		expect(() => refuseWhenEmpty(taken[0]!)).not.toThrow();
		let refusal: GatewayError | undefined;
		try {
			refuseWhenEmpty(taken[2]!);
		} catch (err) {
			refusal = err as GatewayError;
		}
		expect(refusal).toBeInstanceOf(GatewayError);
		expect([refusal!.code, refusal!.type, refusal!.data]).toEqual([429, "RATE_LIMITED", { retry_after: 1 }]);
		expect((await takePrincipalToken(state, log, bob, "requests"))!.allowed).toBe(true);
		now += 1_000;
		expect((await takePrincipalToken(state, log, alice, "requests"))!.allowed).toBe(true);
		expect(log.lines).toEqual([]);
	});

	it("allows while the shared state is away, and says so at most every 10 s per logger", async () => {
		const away = { takeToken: () => Promise.reject(new Error("Connection is closed.")) };
		const log = logger();
		const alice = userPrincipal({ id: 1, username: "alice" }, ["viewer"], []);
		expect(await takePrincipalToken(away, log, alice, "gRPC calls")).toBeNull();
		expect(await takePrincipalToken(away, log, alice, "gRPC calls")).toBeNull();
		expect(log.lines).toEqual(["Rate limiter unavailable, gRPC calls allowed: Connection is closed."]);
	});
});
