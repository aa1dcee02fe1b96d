/**
 * The per-address login limits (docs/rest.md: at most 10 attempts a minute from one address) must hold
 * for IPv6 clients too. One IPv6 subscriber gets a whole /64 (2^64 addresses): counted per full
 * address, each attempt comes from a "new" address, so the limit, the slow-down and the address lock
 * never apply, and every attempt adds a security_events row for ever.
 */
import { http, type TestGateway } from "../support/harness";
import { startAuthGateway } from "../support/auth";

describe("login throttle per IPv6 client", () => {
	let gw: TestGateway;

	beforeAll(async () => {
		gw = await startAuthGateway({ env: { TRUST_PROXY: "127.0.0.1", LOG_LEVEL: "warn" } });
	});
	afterAll(() => gw.stop());

	const login = (username: string, forwardedFor: string) =>
		http(gw.baseUrl, "POST", "/api/v1/auth/login", { body: { username, password: "wrong-password" }, headers: { "x-forwarded-for": forwardedFor } });

	it("an IPv4 address is limited to 10 attempts a minute (control)", async () => {
		const statuses: number[] = [];
		for (let i = 0; i < 12; i++) statuses.push((await login(`v4-user-${i}`, "198.51.100.20")).status);
		expect(statuses.filter((s) => s === 429).length).toBeGreaterThan(0);
	});

	it("addresses of one IPv6 /64 share that limit", async () => {
		const statuses: number[] = [];
		for (let i = 0; i < 12; i++) statuses.push((await login(`v6-user-${i}`, `2001:db8:77:1::${(i + 1).toString(16)}`)).status);
		expect(statuses.filter((s) => s === 429).length).toBeGreaterThan(0);
	});
});
