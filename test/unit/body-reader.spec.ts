import { PassThrough } from "node:stream";
import type { IncomingMessage, ServerResponse } from "node:http";
import { bodyReader } from "../../services/api/http";
import { GatewayError } from "../../lib/errors";

type Request = IncomingMessage & { body?: unknown };

/** Runs the middleware on a request carrying `raw` as its body; resolves with what it passed to next. */
function read(contentType: string | undefined, raw: string, form = true): Promise<{ err: unknown; body: unknown }> {
	const stream = new PassThrough();
	const headers: Record<string, string> = { "content-length": String(Buffer.byteLength(raw)) };
	if (contentType !== undefined) headers["content-type"] = contentType;
	const req = Object.assign(stream, { headers, method: "POST", url: "/" }) as unknown as Request;
	stream.end(raw);
	return new Promise((resolve) => {
		bodyReader({ limit: "1mb", form })(req, {} as ServerResponse, (err?: unknown) => resolve({ err, body: req.body }));
	});
}

describe("bodyReader", () => {
	it.each(["__proto__", "constructor", "toString", "hasOwnProperty", "valueOf", "text/plain", "", "application/json, text/plain"])(
		"Content-Type %j is refused as 415, not looked up on Object.prototype",
		async (type) => {
			const { err } = await read(type, "\u0000");
			expect(err).toBeInstanceOf(GatewayError);
			expect({ status: (err as GatewayError).code, type: (err as GatewayError).type }).toEqual({ status: 415, type: "UNSUPPORTED_MEDIA_TYPE" });
		},
	);

	it("form bodies are refused where the route does not take them", async () => {
		const { err } = await read("application/x-www-form-urlencoded", "a=1", false);
		expect({ status: (err as GatewayError).code, type: (err as GatewayError).type }).toEqual({ status: 415, type: "UNSUPPORTED_MEDIA_TYPE" });
	});

	it("parses JSON without prototype keys, at any depth", async () => {
		const { err, body } = await read("application/json; charset=utf-8", '{"a":{"__proto__":{"x":1},"constructor":2,"b":3},"prototype":4}');
		expect(err).toBeUndefined();
		expect(body).toEqual({ a: { b: 3 } });
		expect(Object.getPrototypeOf((body as { a: object }).a)).toBe(Object.prototype);
	});

	it("a body with no length is an empty object, without reading anything", async () => {
		const stream = new PassThrough();
		const req = Object.assign(stream, { headers: {}, method: "POST", url: "/" }) as unknown as Request;
		const err = await new Promise((resolve) => bodyReader({ limit: "1mb", form: true })(req, {} as ServerResponse, resolve));
		expect(err).toBeUndefined();
		expect(req.body).toEqual({});
	});
});
