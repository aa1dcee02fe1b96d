/** sanitizeJson (lib/json.ts): prototype keys dropped at any depth, arrays included; nesting past the limit refused. */
import { MAX_JSON_DEPTH, sanitizeJson } from "../../lib/json";

const nested = (levels: number, leaf: unknown = 1): unknown => {
	let value = leaf;
	for (let i = 0; i < levels; i++) value = i % 2 === 0 ? [value] : { v: value };
	return value;
};

describe("sanitizeJson", () => {
	it("drops __proto__, constructor and prototype keys in objects inside arrays and objects, and keeps the rest", () => {
		const body = JSON.parse('{"list":[1,{"__proto__":{"admin":true},"keep":[{"constructor":{"x":1},"prototype":2,"deep":"y"}]}],"constructor":3,"n":null}') as Record<string, unknown>;
		expect(sanitizeJson(body, MAX_JSON_DEPTH)).toBe(true);
		expect(JSON.stringify(body)).toBe('{"list":[1,{"keep":[{"deep":"y"}]}],"n":null}');
	});

	it("takes a body exactly `limit` deep and refuses one level more (arrays count as levels)", () => {
		// A primitive leaf is no level: `levels` containers around it.
		expect(sanitizeJson(nested(MAX_JSON_DEPTH), MAX_JSON_DEPTH)).toBe(true);
		expect(sanitizeJson(nested(MAX_JSON_DEPTH + 1), MAX_JSON_DEPTH)).toBe(false);
		expect(sanitizeJson(nested(MAX_JSON_DEPTH, {}), MAX_JSON_DEPTH)).toBe(false);
	});

	it("takes primitives and wide arrays of primitives", () => {
		expect(sanitizeJson("text", 1)).toBe(true);
		expect(sanitizeJson(null, 1)).toBe(true);
		expect(sanitizeJson(Array.from({ length: 500_000 }, (_, i) => i), 1)).toBe(true);
		expect(sanitizeJson([[1]], 1)).toBe(false);
	});
});
