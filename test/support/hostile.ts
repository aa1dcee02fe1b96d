/**
 * fast-check arbitraries shared by the hostile-input property tests (test/integration/hostile-*.spec.ts):
 * malformed, oversized, deeply nested and wrongly typed input, the strings attackers try (SQL and
 * script injection, NUL, RTL overrides, emoji), and mutations of valid JSON. The checks every run ends
 * with are in ./hostile-checks.ts, the gRPC client pieces in ./hostile-grpc.ts.
 */
import fc from "fast-check";

/**
 * fast-check settings for a property against a live gateway: `numRuns` runs, a bounded shrink (each
 * shrink step is a real request), and FC_SEED / FC_PATH to replay a failure fast-check reported
 * (FC_SEED=<seed> FC_PATH=<path> npx jest <file> -t <test>).
 */
export function runs(numRuns: number): fc.Parameters<unknown> {
	const seed = process.env.FC_SEED;
	// HOSTILE_RUNS=4 runs every property four times as long (a deeper search, by hand; not in CI).
	const factor = Number(process.env.HOSTILE_RUNS ?? 1) || 1;
	return {
		numRuns: Math.max(1, Math.round(numRuns * factor)),
		maxSkipsPerRun: 10,
		// Each run (and each shrink step) is real traffic: a property stops after 25 s, inside jest's 30 s
		// per test, with the runs done so far counting; a failure found by then is still reported.
		interruptAfterTimeLimit: 25_000,
		markInterruptAsFailure: false,
		...(seed ? { seed: Number(seed), path: process.env.FC_PATH } : {}),
	};
}

/** Strings attackers try, which must come back as the same plain text wherever they are stored. */
export const INJECTIONS: readonly string[] = [
	"'; DROP TABLE users; --",
	"1' OR '1'='1",
	'" OR ""="',
	"Robert'); DROP TABLE messages;--",
	"<script>alert(1)</script>",
	"<img src=x onerror=alert(document.cookie)>",
	"javascript:alert(1)",
	"\u0000",
	"before\u0000after",
	"\u202Egnp.exe\u202C",
	"שלום עולם \u200F مرحبا",
	"👩‍👩‍👧‍👦 🏳️‍🌈 🇺🇦 👍🏽",
	"Z̴̡̛͎a̷l̶g̸o̵",
	"${7*7} {{7*7}} #{7*7} <%= 7*7 %>",
	"../../../../etc/passwd",
	"%00%27%22%3Cscript%3E",
	"\\'\\\"\\\\\\n",
	"line1\r\nX-Injected: header\r\n\r\n",
	'{"$gt": ""}',
	"__proto__",
	"\uFEFF\u200B\u2060zero-width",
	"\t tabs and  spaces \t",
	"null",
	"' UNION SELECT password_hash FROM users --",
];

/** A hostile text: a known injection, arbitrary Unicode (well-formed), or a mix of both. */
export const hostileText: fc.Arbitrary<string> = fc.oneof(
	{ weight: 3, arbitrary: fc.constantFrom(...INJECTIONS) },
	{ weight: 2, arbitrary: fc.string({ unit: "binary", minLength: 1, maxLength: 80 }) },
	{ weight: 2, arbitrary: fc.string({ unit: "grapheme", minLength: 1, maxLength: 80 }) },
	{ weight: 2, arbitrary: fc.array(fc.oneof(fc.constantFrom(...INJECTIONS), fc.string({ unit: "binary", maxLength: 10 })), { minLength: 2, maxLength: 5 }).map((parts) => parts.join("")) },
);

/** Values that break naive type checks: near-numbers, near-booleans, empty and nested things, huge numbers. */
export const EDGE_VALUES: readonly unknown[] = [
	null,
	true,
	false,
	0,
	-0,
	-1,
	1.5,
	2 ** 53,
	-(2 ** 53),
	1e308,
	-1e308,
	"",
	" ",
	"0",
	"1",
	"-1",
	"1.5",
	"1e3",
	"0x10",
	"true",
	"false",
	"null",
	"NaN",
	"Infinity",
	"99999999999999999999999999",
	[],
	{},
	[null],
	[1, "1"],
	[[[[1]]]],
	{ $gt: 0 },
	{ id: 1 },
	// Plain JSON that JavaScript cannot turn into a primitive: Number() and String() throw on it.
	{ toString: false },
	{ valueOf: {}, toString: "" },
	"x".repeat(5_000),
	"2024-13-45T25:61:61Z",
];

/** Any JSON value (shallow), an edge value, or a hostile string: what a field of a request may hold. */
export const fieldValue: fc.Arbitrary<unknown> = fc.oneof(
	{ weight: 3, arbitrary: fc.jsonValue({ maxDepth: 2 }) },
	{ weight: 3, arbitrary: fc.constantFrom(...EDGE_VALUES) },
	{ weight: 2, arbitrary: hostileText },
);

/** Values of the right JSON type at the edges: limits, huge and negative numbers, odd dates, long and hostile strings. */
export const extremeValue: fc.Arbitrary<unknown> = fc.oneof(
	fc.constantFrom(0, -1, 1, 2 ** 31 - 1, 2 ** 31, 2 ** 53 - 1, 2 ** 63, 1e21, -(2 ** 63), 0.1, ""),
	fc.integer(),
	fc.constantFrom("x".repeat(129), "x".repeat(2_049), "y".repeat(4_097), "0000-00-00T00:00:00Z", "+275760-09-13T00:00:00.000Z", "1970-01-01T00:00:00Z", "9999-12-31T23:59:59Z", "2000-02-30"),
	fc.date({ noInvalidDate: true }).map((d) => d.toISOString()),
	fc.array(fc.oneof(fc.integer(), fc.constantFrom(2 ** 53 - 1, 0, -5)), { maxLength: 120 }),
	hostileText,
);

/**
 * A valid body with some of its fields replaced by hostile or extreme values and others dropped:
 * it passes the first checks more often than random JSON, so the handlers behind them run too.
 */
export function mutatedBody(template: Record<string, unknown>): fc.Arbitrary<string> {
	const keys = Object.keys(template);
	const value = fc.oneof(fieldValue, extremeValue);
	return fc
		.record({
			replaced: fc.subarray(keys, { minLength: 1 }),
			values: fc.array(value, { minLength: keys.length, maxLength: keys.length }),
			dropped: fc.subarray(keys),
		})
		.map(({ replaced, values, dropped }) => {
			const body: Record<string, unknown> = { ...template };
			for (const key of dropped) delete body[key];
			replaced.forEach((key, i) => (body[key] = values[i]));
			return JSON.stringify(body);
		});
}

/** Keys that attack the object a body becomes. */
const HOSTILE_KEYS = ["__proto__", "constructor", "prototype", "$where", "toString", "hasOwnProperty", ""];

/**
 * A JSON body as text for an endpoint with these fields: an object of random values for a random
 * subset of them, perhaps with unknown or hostile keys (`__proto__` spelled into the text, where
 * JSON.parse keeps it as a plain key), or now and then a JSON value of the wrong shape altogether.
 */
export function jsonBodyFor(fields: readonly string[]): fc.Arbitrary<string> {
	const known = fc.record(Object.fromEntries(fields.map((f) => [f, fieldValue])), { requiredKeys: [] });
	const extra = fc.array(fc.tuple(fc.oneof(fc.constantFrom(...HOSTILE_KEYS), fc.string({ maxLength: 12 })), fieldValue), { maxLength: 3 });
	const object = fc.tuple(known, extra).map(([values, extras]) => {
		const entries = [...Object.entries(values), ...extras];
		return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${JSON.stringify(v) ?? "null"}`).join(",")}}`;
	});
	return fc.oneof({ weight: 8, arbitrary: object }, { weight: 1, arbitrary: fc.jsonValue({ maxDepth: 3 }).map((v) => JSON.stringify(v) ?? "null") });
}

/** Text that is not JSON at all (checked: JSON.parse throws on every one). */
export const notJson: fc.Arbitrary<string> = fc
	.oneof(
		fc.constantFrom("{", "[1,", '{"update_id": 1,', "{'a': 1}", "undefined", "NaN", "{a:1}", '{"a":1}}', "[]]", "\u0000", '{"a":"\\x"}', '{"a":01}', "tru", "<xml/>", "--", '"unterminated'),
		fc.string({ unit: "binary", minLength: 1, maxLength: 200 }),
		fc.tuple(fc.jsonValue(), fc.constantFrom(",", "}", "]", "'", "x")).map(([v, tail]) => (JSON.stringify(v) ?? "null") + tail),
	)
	.filter((text) => {
		try {
			JSON.parse(text);
			return false;
		} catch {
			return true;
		}
	});

/** JSON nested `depth` levels deep (objects, arrays or both), built as text: no recursion anywhere. */
export function nestedJson(depth: number, kind: "object" | "array" | "mixed", leaf = "1"): string {
	const open: string[] = [];
	const close: string[] = [];
	for (let i = 0; i < depth; i++) {
		const array = kind === "array" || (kind === "mixed" && i % 2 === 1);
		open.push(array ? "[" : '{"a":');
		close.push(array ? "]" : "}");
	}
	return open.join("") + leaf + close.reverse().join("");
}

/** A JSON nesting deeper than the gateway's limit (64), up to far past what a recursive parser survives. */
export const deepNesting: fc.Arbitrary<{ depth: number; kind: "object" | "array" | "mixed" }> = fc.record({
	depth: fc.oneof(fc.integer({ min: 65, max: 200 }), fc.integer({ min: 1_000, max: 100_000 })),
	kind: fc.constantFrom("object" as const, "array" as const, "mixed" as const),
});

/** True when a path segment would be read as a plausible id (a positive integer up to a million). */
function readsAsSmallId(segment: string): boolean {
	let decoded: string;
	try {
		decoded = decodeURIComponent(segment);
	} catch {
		return false;
	}
	if (decoded.trim() === "") return false;
	const n = Number(decoded);
	return Number.isInteger(n) && n > 0 && n <= 1_000_000;
}

/** A path segment where an id belongs that is not one: wrong types, encodings, traversal, huge. */
export const badIdSegment: fc.Arbitrary<string> = fc
	.oneof(
		fc.constantFrom(
			"0",
			"-1",
			"1.5",
			"abc",
			"null",
			"undefined",
			"NaN",
			"Infinity",
			"-Infinity",
			"9".repeat(30),
			"1e400",
			"%00",
			"%zz",
			"%E0%A4%A",
			"%2e%2e",
			"..",
			"%2F",
			"%F0%9F%98%80",
			"[]",
			"{}",
			"__proto__",
			"constructor",
			"1%20OR%201%3D1",
			"%3Cscript%3E",
			"x".repeat(2_000),
			"1;DROP%20TABLE%20chats",
		),
		fc.string({ unit: "binary", minLength: 1, maxLength: 30 }).map(encodeURIComponent),
		fc.double({ noNaN: false }).map((d) => encodeURIComponent(String(d))),
	)
	.filter((segment) => !readsAsSmallId(segment));

/** Query-string keys and values of every kind qs understands: arrays, nested objects, prototype keys. */
export function queryFor(fields: readonly string[]): fc.Arbitrary<string> {
	const key = fc.oneof(
		{ weight: 4, arbitrary: fc.constantFrom(...(fields.length > 0 ? fields : ["limit"])) },
		{ weight: 1, arbitrary: fc.constantFrom(...fields.flatMap((f) => [`${f}[]`, `${f}[$gt]`, `${f}[0][1]`]), "__proto__[is_admin]", "constructor[prototype][x]", "a[0][1][2][3][4][5][6][7][8][9][10][11][12][13][14][15][16][17][18][19][20][21]", "limit", "cursor") },
		{ weight: 1, arbitrary: fc.string({ maxLength: 10 }).map(encodeURIComponent) },
	);
	const value = fc.oneof(
		fc.constantFrom("", "-1", "0", "1.5", "abc", "1e400", "99999999999999999999999", "true", "yes", "[]", "{}", "%", "%zz", "%00", "null", "x".repeat(3_000)),
		fc.string({ unit: "binary", maxLength: 40 }).map(encodeURIComponent),
		hostileText.map(encodeURIComponent),
	);
	return fc.array(fc.tuple(key, value), { maxLength: 6 }).map((pairs) => (pairs.length === 0 ? "" : `?${pairs.map(([k, v]) => `${k}=${v}`).join("&")}`));
}

export type JsonPath = Array<string | number>;

/** Every path into a JSON value (objects and arrays, up to `maxDepth` levels), found without recursion. */
export function jsonPaths(value: unknown, maxDepth = 6): JsonPath[] {
	const paths: JsonPath[] = [];
	const stack: Array<{ value: unknown; path: JsonPath }> = [{ value, path: [] }];
	while (stack.length > 0) {
		const { value: current, path } = stack.pop()!;
		if (current === null || typeof current !== "object" || path.length >= maxDepth) continue;
		const entries: Array<[string | number, unknown]> = Array.isArray(current) ? current.map((v, i) => [i, v]) : Object.entries(current);
		for (const [key, child] of entries) {
			paths.push([...path, key]);
			stack.push({ value: child, path: [...path, key] });
		}
	}
	return paths;
}

/**
 * A copy of `value` with `path` set to `replacement` (deleted when it is undefined). A path an
 * earlier mutation did away with is left alone: an object turned into an array has no `length` to
 * set (a message entity's), nor any other key of the object.
 */
export function withPath(value: unknown, path: JsonPath, replacement: unknown): unknown {
	const copy = structuredClone(value) as Record<string | number, unknown>;
	let parent = copy;
	for (const key of path.slice(0, -1)) {
		const next = parent[key];
		if (next === null || typeof next !== "object") return copy;
		parent = next as Record<string | number, unknown>;
	}
	const last = path[path.length - 1]!;
	if (Array.isArray(parent) && typeof last !== "number") return copy;
	if (replacement === undefined) {
		if (Array.isArray(parent) && typeof last === "number") parent.splice(last, 1);
		else delete parent[last];
	} else parent[last] = replacement;
	return copy;
}

/**
 * `base` with one to four of its paths (any of them, or one of `focus`) replaced by a hostile value
 * or deleted: wrong types where the reader expects a shape.
 */
export function mutatedJson(base: unknown, focus: JsonPath[] = []): fc.Arbitrary<{ value: unknown; paths: JsonPath[] }> {
	const all = jsonPaths(base);
	const path = focus.length > 0 ? fc.oneof(fc.constantFrom(...focus), fc.constantFrom(...all)) : fc.constantFrom(...all);
	const replacement = fc.option(fc.oneof(fieldValue, extremeValue), { nil: undefined, freq: 6 });
	return fc.array(fc.tuple(path, replacement), { minLength: 1, maxLength: 4 }).map((mutations) => ({
		value: mutations.reduce<unknown>((current, [p, v]) => withPath(current, p, v), base),
		paths: mutations.map(([p]) => p),
	}));
}
