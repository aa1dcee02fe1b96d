import { PassThrough } from "node:stream";
import { deflateSync, gzipSync } from "node:zlib";
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
		bodyReader({ limit: "1mb", form, maxFields: 10 })(req, {} as ServerResponse, (err?: unknown) => resolve({ err, body: req.body }));
	});
}

describe("bodyReader", () => {
	it("holds a request whose credential was not verified before its body to the unverified limit, by form and JSON alike", async () => {
		const reader = bodyReader({ limit: "1kb", form: true, maxFields: 10, unverified: { limit: "100b", message: "verify first" } });
		const run = (type: string, raw: string, verified: boolean) => {
			const stream = new PassThrough();
			const headers = { "content-length": String(Buffer.byteLength(raw)), "content-type": type };
			const req = Object.assign(stream, { headers, method: "POST", url: "/", $principal: verified ? { type: "api_key" } : undefined }) as unknown as Request;
			stream.end(raw);
			return new Promise<unknown>((resolve) => reader(req, {} as ServerResponse, resolve));
		};
		for (const [type, raw] of [["application/json", JSON.stringify({ a: "x".repeat(200) })], ["application/x-www-form-urlencoded", `a=${"x".repeat(200)}`]] as const) {
			const refused = (await run(type, raw, false)) as GatewayError;
			expect({ status: refused.code, type: refused.type, message: refused.message, data: refused.data }).toEqual({ status: 413, type: "PAYLOAD_TOO_LARGE", message: "verify first", data: { limit: 100 } });
			expect(await run(type, raw, true)).toBeUndefined();
		}
		// Past the full limit: 413 naming the limit, as the unverified one does.
		const overFull = (await run("application/json", JSON.stringify({ a: "x".repeat(2_000) }), true)) as GatewayError;
		expect({ status: overFull.code, type: overFull.type, message: overFull.message, data: overFull.data }).toEqual({ status: 413, type: "PAYLOAD_TOO_LARGE", message: "The body is larger than 1024 bytes", data: { limit: 1024 } });
	});

	it.each(["__proto__", "constructor", "toString", "hasOwnProperty", "valueOf", "text/plain", "", "application/json, text/plain"])(
		"Content-Type %j is refused as 415, not looked up on Object.prototype",
		async (type) => {
			const { err } = await read(type, "\u0000");
			expect(err).toBeInstanceOf(GatewayError);
			expect({ status: (err as GatewayError).code, type: (err as GatewayError).type }).toEqual({ status: 415, type: "UNSUPPORTED_MEDIA_TYPE" });
		},
	);

	it.each([
		["gzip", Buffer.from('{"username":"a"}')],
		["deflate", Buffer.from('{"username":"a"}')],
		["gzip", gzipSync('{"username":"a"}').subarray(0, 12)],
		["deflate", deflateSync("a=1").subarray(0, 4)],
	])("a %s body that does not decompress is 400 BAD_REQUEST saying so (was a 500)", async (encoding, raw) => {
		for (const type of ["application/json", "application/x-www-form-urlencoded"]) {
			const stream = new PassThrough();
			const headers = { "content-length": String(raw.length), "content-type": type, "content-encoding": encoding };
			const req = Object.assign(stream, { headers, method: "POST", url: "/" }) as unknown as Request;
			stream.end(raw);
			const err = await new Promise<unknown>((resolve) => bodyReader({ limit: "1mb", form: true, maxFields: 10 })(req, {} as ServerResponse, resolve));
			expect(err).toBeInstanceOf(GatewayError);
			expect({ status: (err as GatewayError).code, type: (err as GatewayError).type, message: (err as GatewayError).message }).toEqual({
				status: 400,
				type: "BAD_REQUEST",
				message: `The body is not valid ${encoding} data`,
			});
		}
	});

	it.each(['"a string"', "null", "5", "true"])("a JSON body %s (valid JSON, no object) is 400 'The body must be a JSON object', not 'malformed'", async (raw) => {
		const { err } = await read("application/json", raw);
		expect({ status: (err as GatewayError).code, type: (err as GatewayError).type, message: (err as GatewayError).message }).toEqual({ status: 400, type: "BAD_REQUEST", message: "The body must be a JSON object" });
		const malformed = (await read("application/json", '{"a":')).err as { type?: string };
		expect(malformed.type).toBe("entity.parse.failed");
	});

	it("JSON nested deeper than the limit names the limit", async () => {
		const { err } = await read("application/json", `${'{"a":'.repeat(70)}1${"}".repeat(70)}`);
		expect({ type: (err as GatewayError).type, data: (err as GatewayError).data }).toEqual({ type: "BAD_REQUEST", data: { limit: 64 } });
	});

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
		const err = await new Promise((resolve) => bodyReader({ limit: "1mb", form: true, maxFields: 10 })(req, {} as ServerResponse, resolve));
		expect(err).toBeUndefined();
		expect(req.body).toEqual({});
	});

	// A bare string or null body-parser refuses itself (strict), as malformed JSON.
	it.each([
		["an array", "[1,2,3]"],
		["an empty array", "[]"],
	])("a JSON body that is %s, not an object, is a 400 before anything else reads it", async (_what, raw) => {
		const { err } = await read("application/json", raw);
		expect(err).toBeInstanceOf(GatewayError);
		expect({ status: (err as GatewayError).code, type: (err as GatewayError).type, message: (err as GatewayError).message }).toEqual({
			status: 400,
			type: "BAD_REQUEST",
			message: "The body must be a JSON object",
		});
	});

	it("a body with more fields than the route's cap is a 400 naming the cap; at the cap it is read", async () => {
		const fields = (n: number) => JSON.stringify(Object.fromEntries(Array.from({ length: n }, (_, i) => [`f${i}`, i])));
		const over = await read("application/json", fields(11));
		expect({ status: (over.err as GatewayError).code, type: (over.err as GatewayError).type, data: (over.err as GatewayError).data }).toEqual({
			status: 400,
			type: "BAD_REQUEST",
			data: { limit: 10 },
		});
		const form = await read("application/x-www-form-urlencoded", Array.from({ length: 11 }, (_, i) => `f${i}=${i}`).join("&"));
		expect((form.err as GatewayError).type).toBe("BAD_REQUEST");
		const atCap = await read("application/json", fields(10));
		expect(atCap.err).toBeUndefined();
		expect(Object.keys(atCap.body as object)).toHaveLength(10);
	});
});
