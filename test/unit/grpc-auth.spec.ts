import { Metadata } from "@grpc/grpc-js";
import { fail, type GatewayError } from "../../lib/errors";
import { createMemoryState } from "../../lib/state/memory";
import type { Principal } from "../../services/auth/principal";
import { authenticate, AUTH_FAILURES_PER_MINUTE, clientAddressOf, credentialFrom, type AuthDeps } from "../../services/grpc/auth";

function md(entries: Record<string, string>): Metadata {
	const metadata = new Metadata();
	for (const [key, value] of Object.entries(entries)) metadata.set(key, value);
	return metadata;
}

async function rejection(promise: Promise<unknown>): Promise<GatewayError> {
	try {
		await promise;
	} catch (err) {
		return err as GatewayError;
	}
	throw new Error("did not reject");
}

const principal: Principal = { type: "api_key", id: 4, user_id: 1, name: "k", roles: ["admin"], permissions: [], rate_limit: 2, is_admin: true };

describe("credentialFrom", () => {
	it("takes authorization: Bearer <token> (case-insensitive scheme), else x-api-key", () => {
		expect(credentialFrom(md({ authorization: "Bearer eyJ.a.b" }))).toBe("eyJ.a.b");
		expect(credentialFrom(md({ authorization: "bearer   tgw_abc  " }))).toBe("tgw_abc");
		expect(credentialFrom(md({ "x-api-key": " tgw_key " }))).toBe("tgw_key");
		expect(credentialFrom(md({ authorization: "Bearer first", "x-api-key": "tgw_second" }))).toBe("first");
		expect(credentialFrom(md({}))).toBeNull();
		expect(credentialFrom(md({ "x-api-key": "  " }))).toBeNull();
		// Another scheme is not ours: the x-api-key beside it is the credential.
		expect(credentialFrom(md({ authorization: "Basic dXNlcjpwYXNz", "x-api-key": "tgw_key" }))).toBe("tgw_key");
	});

	it.each(["Basic dXNlcjpwYXNz", "Bearer", "Bearer a b", "tgw_only"])("refuses authorization %p as UNAUTHORIZED", (value) => {
		let err: GatewayError | undefined;
		try {
			credentialFrom(md({ authorization: value }));
		} catch (e) {
			err = e as GatewayError;
		}
		expect(err?.type).toBe("UNAUTHORIZED");
	});
});

describe("clientAddressOf", () => {
	it("is the peer's host, unless the peer is a trusted proxy: then x-forwarded-for decides", () => {
		expect(clientAddressOf("10.0.0.7:51234", md({}), [])).toBe("10.0.0.7");
		expect(clientAddressOf("::1:51234", md({}), [])).toBe("::1");
		expect(clientAddressOf("::ffff:10.0.0.7:51234", md({}), [])).toBe("10.0.0.7");
		expect(clientAddressOf("10.0.0.7:51234", md({ "x-forwarded-for": "1.2.3.4" }), [])).toBe("10.0.0.7");
		expect(clientAddressOf("10.0.0.7:51234", md({ "x-forwarded-for": "1.2.3.4, 10.0.0.9" }), ["10.0.0.7", "10.0.0.9"])).toBe("1.2.3.4");
	});
});

describe("authenticate", () => {
	function deps(overrides: Partial<AuthDeps> = {}): AuthDeps & { warnings: string[] } {
		const warnings: string[] = [];
		return {
			resolveCredential: async (credential) => {
				if (credential === "good") return principal;
				throw fail.unauthorized("Invalid token");
			},
			state: createMemoryState(),
			trustedProxies: [],
			logger: { warn: (...args: unknown[]) => void warnings.push(args.join(" ")) },
			warnings,
			...overrides,
		};
	}

	it("resolves the credential, names the client, and charges one token per call from the principal's bucket", async () => {
		const d = deps();
		expect(await authenticate(d, md({ authorization: "Bearer good" }), "10.1.1.1:4000")).toEqual({ principal, credential: "good", clientIp: "10.1.1.1" });
		await authenticate(d, md({ "x-api-key": "good" }), "10.1.1.1:4000");
		const refused = await rejection(authenticate(d, md({ "x-api-key": "good" }), "10.1.1.1:4000"));
		expect([refused.type, (refused.data as { retry_after: number }).retry_after]).toEqual(["RATE_LIMITED", 1]);
	});

	it("no credential or a bad one: UNAUTHORIZED; failures from one address are counted and then refused unchecked, as on REST", async () => {
		const d = deps();
		const resolve = jest.spyOn(d, "resolveCredential");
		expect((await rejection(authenticate(d, md({}), "10.2.2.2:1"))).type).toBe("UNAUTHORIZED");
		expect(resolve).not.toHaveBeenCalled();
		for (let i = 0; i < AUTH_FAILURES_PER_MINUTE; i++) expect((await rejection(authenticate(d, md({ authorization: "Bearer bad" }), "10.2.2.2:1"))).type).toBe("UNAUTHORIZED");
		expect((await rejection(authenticate(d, md({ authorization: "Bearer good" }), "10.2.2.2:1"))).type).toBe("RATE_LIMITED");
		expect(resolve).toHaveBeenCalledTimes(AUTH_FAILURES_PER_MINUTE);
		// Another address is not affected.
		expect((await authenticate(d, md({ authorization: "Bearer good" }), "10.3.3.3:1")).principal).toBe(principal);
	});

	it("auth being away is UNAVAILABLE and not counted as a failure", async () => {
		const d = deps({ resolveCredential: async () => Promise.reject(fail.unavailable("auth")) });
		const hit = jest.spyOn(d.state, "hit");
		expect((await rejection(authenticate(d, md({ authorization: "Bearer x" }), "10.4.4.4:1"))).type).toBe("UNAVAILABLE");
		expect(hit).not.toHaveBeenCalled();
	});

	it("a state store that throws lets the call through (REST's policy) and says so", async () => {
		const broken = { takeToken: () => Promise.reject(new Error("redis down")), hit: () => Promise.reject(new Error("redis down")), peekWindow: () => Promise.reject(new Error("redis down")) };
		const d = deps({ state: broken });
		expect((await authenticate(d, md({ authorization: "Bearer good" }), "10.5.5.5:1")).principal).toBe(principal);
		expect(d.warnings.join()).toMatch(/Rate limiter unavailable.*redis down/);
		expect((await rejection(authenticate(d, md({ authorization: "Bearer bad" }), "10.5.5.5:1"))).type).toBe("UNAUTHORIZED");
	});
});
