/**
 * How the REST gateway reads a request's parameters (found by a contract probe): a field given both
 * in the query and in the body is refused rather than the query silently winning; a credential in
 * the query of a public route is no unknown parameter; validation messages name each field once; a
 * caller without the action's permission hears 403 before anything about its params.
 */
import { ADMIN_PASSWORD, adminToken, api, createUser, startAuthGateway } from "../support/auth";
import { http, type TestGateway } from "../support/harness";

describe("REST request shape", () => {
	let gw: TestGateway;
	let token: string;
	beforeAll(async () => {
		gw = await startAuthGateway({ env: { ADMIN_PASSWORD } });
		token = await adminToken(gw);
	});
	afterAll(() => gw.stop());

	const keyCount = () => gw.runtime.db.models.ApiKey.count();

	it("a field in both the query and the body is 400 naming it, and nothing is made", async () => {
		const before = await keyCount();
		const res = await api(gw.baseUrl, "POST", "/apikeys?name=from-query&rate_limit=7", token, { name: "from-body", rate_limit: 5 });
		expect(res.status).toBe(400);
		expect(res.body).toMatchObject({ error: { code: "VALIDATION_ERROR", details: { fields: [{ field: "name" }, { field: "rate_limit" }] } } });
		expect(JSON.stringify(res.body)).toContain("given both in the query and in the body");
		expect(await keyCount()).toBe(before);
	});

	it("a credential in the query is not a doubled field (POST /bots-style bodies have a `token` of their own); a field only in the query still counts", async () => {
		const res = await http<{ name: string; rate_limit: number }>(gw.baseUrl, "POST", `/api/v1/apikeys?token=${encodeURIComponent(token)}&rate_limit=7`, { body: { name: "by-query-credential", token: "not-a-credential" } });
		// `token` in the body is an unknown field of this action: refused by its own validation, not as doubled.
		expect(res.status).toBe(400);
		expect(JSON.stringify(res.body)).not.toContain("given both");
		const ok = await http<{ name: string; rate_limit: number }>(gw.baseUrl, "POST", `/api/v1/apikeys?token=${encodeURIComponent(token)}&rate_limit=7`, { body: { name: "by-query-credential" } });
		expect(ok.status).toBe(201);
		expect(ok.body).toMatchObject({ name: "by-query-credential", rate_limit: 7 });
	});

	it("GET /api/openapi.json with the client's ?token= or ?api_key= is the document, not 'Unknown field'", async () => {
		for (const query of [`token=${encodeURIComponent(token)}`, "api_key=tgw_x"]) {
			const res = await http(gw.baseUrl, "GET", `/api/openapi.json?${query}`);
			expect({ query, status: res.status }).toEqual({ query, status: 200 });
		}
	});

	it("a caller without the permission is 403 whatever its params (not a 400 listing the action's fields)", async () => {
		const viewer = await createUser(gw, token, ["viewer"]);
		const res = await api(gw.baseUrl, "POST", "/users", viewer.token, { username: "x" });
		expect(res.status).toBe(403);
		expect(res.body).toMatchObject({ error: { code: "FORBIDDEN", message: "Missing permission users:write" } });
	});

	it("a string that is not valid Unicode (half an emoji) is 400 naming its field, and nothing is made", async () => {
		const before = await keyCount();
		const res = await api(gw.baseUrl, "POST", "/apikeys", token, { name: "half \ud83d emoji" });
		expect(res.status).toBe(400);
		expect(res.body).toMatchObject({ error: { code: "VALIDATION_ERROR", details: { fields: [{ field: "name", message: expect.stringContaining("not valid Unicode") }] } } });
		expect(await keyCount()).toBe(before);
		expect((await api(gw.baseUrl, "POST", "/apikeys", token, { name: "whole \ud83d\ude00 emoji" })).status).toBe(201);
	});

	it("a method a path is not served with: 404 NOT_FOUND naming the methods it takes, in the message and in Allow; an unknown path stays a plain 404", async () => {
		const wrong = await api(gw.baseUrl, "PUT", "/apikeys", token, {});
		expect(wrong.status).toBe(404);
		expect(wrong.headers.get("allow")).toBe("GET, POST");
		expect(wrong.body).toMatchObject({ error: { code: "NOT_FOUND", message: "PUT is not served on /api/v1/apikeys: it takes GET, POST" } });
		expect((await api(gw.baseUrl, "GET", "/auth/login", token)).headers.get("allow")).toBe("POST");
		const unknown = await api(gw.baseUrl, "GET", "/no-such-thing", token);
		expect(unknown.status).toBe(404);
		expect(unknown.headers.get("allow")).toBeNull();
	});

	it("validation messages: a repeated array item is named in plain words; a field failing two rules is named once", async () => {
		const repeated = await api(gw.baseUrl, "POST", "/users", token, { username: "repeats", password: "long-enough-password", roles: ["viewer", "viewer"] });
		expect(repeated.status).toBe(400);
		expect((repeated.body as { error: { details: { fields: Array<{ message: string }> } } }).error.details.fields[0]!.message).toBe("The 'roles' field lists viewer more than once.");
		const empty = await api(gw.baseUrl, "POST", "/apikeys", token, { name: "" });
		expect(empty.status).toBe(400);
		expect((empty.body as { error: { message: string } }).error.message).toBe("Invalid name");
	});
});
