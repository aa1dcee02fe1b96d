import { http, startTestGateway, type TestGateway } from "../support/harness";

describe("api gateway basics", () => {
	let gw: TestGateway;
	beforeAll(async () => {
		gw = await startTestGateway({ nodes: [["api", "broker"]] });
	});
	afterAll(() => gw.stop());

	it("GET /health answers while the process lives", async () => {
		const res = await http(gw.baseUrl, "GET", "/health");
		expect(res.status).toBe(200);
		expect(res.body).toMatchObject({ status: "ok" });
	});

	it("GET /ready reports each dependency", async () => {
		const res = await http(gw.baseUrl, "GET", "/ready");
		expect(res.status).toBe(200);
		expect(res.body).toEqual({ status: "ok", checks: { db: "up", transporter: "disabled", cacher: "up", state: "up" } });
	});

	it("every response carries X-Request-Id; a sane incoming one is kept, a hostile one replaced", async () => {
		const generated = await http(gw.baseUrl, "GET", "/health");
		expect(generated.headers.get("x-request-id")).toMatch(/^[0-9a-f-]{36}$/);
		const kept = await http(gw.baseUrl, "GET", "/health", { headers: { "x-request-id": "trace-abc.123" } });
		expect(kept.headers.get("x-request-id")).toBe("trace-abc.123");
		const replaced = await http(gw.baseUrl, "GET", "/nope", { headers: { "x-request-id": "<script>" + "x".repeat(300) } });
		expect(replaced.headers.get("x-request-id")).toMatch(/^[0-9a-f-]{36}$/);
	});

	it("unknown routes get the error format with 404", async () => {
		const res = await http(gw.baseUrl, "GET", "/api/v1/no-such-thing");
		expect(res.status).toBe(404);
		expect(res.body).toEqual({ error: { code: "NOT_FOUND", message: "Not found" } });
		expect(res.headers.get("content-type")).toMatch(/application\/json/);
	});

	const receiver = "/api/v1/telegram/webhook/" + "a".repeat(64);
	// A route whose body is read here, though no node runs its service (Telegram's receiver asks ingest first).
	const bodyRoute = "/api/v1/auth/login";

	it("malformed JSON is a 400 that says so", async () => {
		const res = await http(gw.baseUrl, "POST", bodyRoute, { raw: '{"update_id": 1,', headers: { "content-type": "application/json" } });
		expect(res.status).toBe(400);
		expect(res.body).toEqual({ error: { code: "BAD_REQUEST", message: "Malformed JSON body" } });
	});

	it("bodies over 1 MB are refused with 413", async () => {
		const big = JSON.stringify({ update_id: 1, message: { text: "x".repeat(1024 * 1024 + 10) } });
		const res = await http(gw.baseUrl, "POST", bodyRoute, { raw: big, headers: { "content-type": "application/json" } });
		expect(res.status).toBe(413);
		expect(res.body).toMatchObject({ error: { code: "PAYLOAD_TOO_LARGE" } });
	});

	it("a body of another type is refused with 415", async () => {
		const res = await http(gw.baseUrl, "POST", bodyRoute, { raw: "<xml/>", headers: { "content-type": "text/xml" } });
		expect(res.status).toBe(415);
		expect(res.body).toMatchObject({ error: { code: "UNSUPPORTED_MEDIA_TYPE", details: { content_type: "text/xml" } } });
	});

	it("a request for a service that no node runs is 503 UNAVAILABLE, without internals", async () => {
		const res = await http(gw.baseUrl, "POST", receiver, { body: { update_id: 1 } });
		expect(res.status).toBe(503);
		expect(res.body).toEqual({ error: { code: "UNAVAILABLE", message: "Service temporarily unavailable, try again later" } });
		expect(res.text).not.toMatch(/ingest|stack|at \w+/);
	});

	it("GET /ready turns 503 and names the database when it is down", async () => {
		const db = gw.runtime.db;
		const ping = db.ping;
		db.ping = async () => {
			throw new Error("connect ECONNREFUSED");
		};
		try {
			const res = await http(gw.baseUrl, "GET", "/ready");
			expect(res.status).toBe(503);
			expect(res.body).toEqual({ status: "unavailable", checks: { db: "down", transporter: "disabled", cacher: "up", state: "up" } });
		} finally {
			db.ping = ping;
		}
	});
});
