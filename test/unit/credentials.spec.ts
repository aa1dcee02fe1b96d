import type { IncomingMessage } from "node:http";
import { credentialOutsideBody, takeCredential } from "../../services/api/credentials";
import { Cursors } from "../../lib/paging";
import { clientAddress } from "../../services/api/http";

function request(init: { headers?: Record<string, string>; query?: Record<string, unknown>; body?: Record<string, unknown> }) {
	const query = init.query ?? {};
	const body = init.body ?? {};
	return {
		headers: init.headers ?? {},
		query,
		body,
		$params: { ...body, ...query },
		socket: { remoteAddress: "10.0.0.1" },
	} as unknown as IncomingMessage & { $params: Record<string, unknown> };
}

describe("credentialOutsideBody (read before the body)", () => {
	it("finds what takeCredential would pick when a header or the query carries it, and never looks at the body", () => {
		const cases = [
			request({ headers: { authorization: "Bearer jwt", "x-api-key": "tgw_h" }, query: { api_key: "tgw_q" } }),
			request({ headers: { authorization: "Basic dXNlcjpwYXNz", "x-api-key": " tgw_h " } }),
			request({ query: { token: "jwt-q" }, body: { api_key: "tgw_b" } }),
			request({ query: { api_key: ["tgw_q1", "tgw_q2"] } }),
		];
		expect(cases.map((req) => credentialOutsideBody(req))).toEqual(["jwt", "tgw_h", "jwt-q", "tgw_q1"]);
		cases.forEach((req) => expect(credentialOutsideBody(req)).toBe(takeCredential(req)));
	});

	it("is undefined for a credential only in the body, none at all, or another scheme alone (no throw: the route may be public)", () => {
		expect(credentialOutsideBody(request({ body: { api_key: "tgw_b" } }))).toBeUndefined();
		expect(credentialOutsideBody(request({}))).toBeUndefined();
		expect(credentialOutsideBody(request({ headers: { authorization: "Basic dXNlcjpwYXNz" } }))).toBeUndefined();
	});
});

describe("takeCredential", () => {
	it("reads a Bearer token", () => {
		expect(takeCredential(request({ headers: { authorization: "Bearer abc.def.ghi" } }))).toBe("abc.def.ghi");
	});

	it("refuses another scheme when the request carries no other credential", () => {
		expect(() => takeCredential(request({ headers: { authorization: "Basic dXNlcjpwYXNz" } }))).toThrow(/Bearer/);
	});

	it("looks past another scheme (a proxy's or a browser's Basic) to the credential the request does carry", () => {
		const basic = { authorization: "Basic dXNlcjpwYXNz" };
		expect(takeCredential(request({ headers: { ...basic, "x-api-key": "tgw_k" } }))).toBe("tgw_k");
		expect(takeCredential(request({ headers: basic, query: { api_key: "tgw_q" } }))).toBe("tgw_q");
		expect(takeCredential(request({ headers: basic, body: { api_key: "tgw_b" } }))).toBe("tgw_b");
	});

	it("reads X-API-Key, ?api_key, ?token and a body api_key, and takes them out of the params", () => {
		expect(takeCredential(request({ headers: { "x-api-key": "tgw_k" } }))).toBe("tgw_k");
		const q = request({ query: { api_key: "tgw_q", limit: "5" } });
		expect(takeCredential(q)).toBe("tgw_q");
		expect(q.$params).toEqual({ limit: "5" });
		const t = request({ query: { token: "jwt" } });
		expect(takeCredential(t)).toBe("jwt");
		expect(t.$params).toEqual({});
		const b = request({ body: { api_key: "tgw_b", name: "x" } });
		expect(takeCredential(b)).toBe("tgw_b");
		expect(b.$params).toEqual({ name: "x" });
	});

	it("gives a body field named token back when ?token= was the credential (POST /bots has its own token)", () => {
		const req = request({ query: { token: "tgw_cred" }, body: { token: "123:bot-token" } });
		expect(takeCredential(req)).toBe("tgw_cred");
		expect(req.$params).toEqual({ token: "123:bot-token" });
	});

	it("finds nothing when nothing is there", () => {
		expect(takeCredential(request({}))).toBeNull();
	});
});

describe("clientAddress", () => {
	const req = (remote: string, xff?: string) =>
		({ socket: { remoteAddress: remote }, headers: xff ? { "x-forwarded-for": xff } : {} }) as unknown as IncomingMessage;

	it("ignores X-Forwarded-For unless the peer is a trusted proxy", () => {
		expect(clientAddress(req("::ffff:10.0.0.9", "1.2.3.4"), [])).toBe("10.0.0.9");
		expect(clientAddress(req("10.0.0.9", "1.2.3.4"), ["10.0.0.8"])).toBe("10.0.0.9");
	});

	it("walks the chain back past trusted proxies", () => {
		expect(clientAddress(req("10.0.0.9", "6.6.6.6, 1.2.3.4, 10.0.0.7"), ["10.0.0.9", "10.0.0.7"])).toBe("1.2.3.4");
	});
});

describe("paging", () => {
	const cursors = new Cursors("a test secret of some length");

	it("round-trips cursors of a list; none is null", () => {
		expect(cursors.after("chats", cursors.encode("chats", "42"))).toBe(42);
		expect(cursors.after("chats", undefined)).toBeNull();
		expect(cursors.after("chats", "")).toBeNull();
	});

	it.each([
		["garbage", "bm9wZQ"],
		["the unsigned form given out before", Buffer.from("k:42").toString("base64url")],
		["another list's", new Cursors("a test secret of some length").encode("deliveries", "42")],
		["another secret's (another deployment's)", new Cursors("another secret").encode("chats", "42")],
		["a forged key under a real signature", `${Buffer.from("0").toString("base64url")}.${cursors.encode("chats", "42").split(".")[1]}`],
		["a signed non-number", new Cursors("a test secret of some length").encode("chats", "k:1")],
		["an extra part", `${cursors.encode("chats", "42")}.x`],
	])("refuses %s as a 400 naming cursor", (_what, cursor) => {
		expect(() => cursors.after("chats", cursor)).toThrow(expect.objectContaining({ type: "VALIDATION_ERROR", data: { fields: [expect.objectContaining({ field: "cursor" })] } }));
	});

	it("pages with one extra row", () => {
		const rows = [1, 2, 3].map((id) => ({ id }));
		expect(cursors.page("chats", rows, 2, (r) => r.id, (r) => r.id)).toEqual({ data: [1, 2], next_cursor: cursors.encode("chats", "2") });
		expect(cursors.page("chats", rows, 3, (r) => r.id, (r) => r.id)).toEqual({ data: [1, 2, 3], next_cursor: null });
	});
});
