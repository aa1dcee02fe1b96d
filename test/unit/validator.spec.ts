import { ServiceBroker, Validators } from "moleculer";
import { toApiError } from "../../lib/errors";
import { GatewayValidator } from "../../lib/validator";

const SCHEMA = {
	$$strict: true,
	id: { type: "number", integer: true, positive: true, convert: true },
	flag: { type: "boolean", convert: true, optional: true },
	since: { type: "date", convert: true, optional: true },
	name: { type: "string", convert: true, optional: true },
};

describe("GatewayValidator", () => {
	it("(the bug) fastest-validator's conversions throw a TypeError on a plain JSON object such as {toString: false}", () => {
		const check = new (Validators.Fastest as unknown as new () => { compile(s: object): (p: unknown) => unknown })().compile(SCHEMA);
		expect(() => check({ id: { toString: false } })).toThrow(TypeError);
	});

	it.each([
		["id", { toString: false }],
		["id", { valueOf: {}, toString: "" }],
		["since", { toString: 1 }],
		["name", { toString: [] }],
	])("refuses an unconvertible %s as a failed check naming it", (field, value) => {
		const check = new GatewayValidator().compile(SCHEMA);
		// Number and date fields refuse any object before conversion is even tried ("number", "date"); the others when it fails.
		const before = { id: "number", since: "date" } as Record<string, string>;
		expect(check({ id: 1, [field]: value })).toEqual([expect.objectContaining({ type: before[field] ?? "unreadable", field })]);
	});

	it("passes valid params and reports ordinary problems as before", () => {
		const check = new GatewayValidator().compile(SCHEMA);
		expect(check({ id: "7", flag: "true" })).toBe(true);
		expect(check({ id: -1 })).toEqual([expect.objectContaining({ field: "id", type: "numberPositive" })]);
	});

	it("keeps a secret-named field's refused value out of the error (Moleculer logs it at debug)", async () => {
		const schema = {
			token: { type: "string", pattern: /^\d+:[\w-]{30,}$/ },
			webhook: { type: "object", optional: true, props: { secret_token: { type: "string", max: 4 } } },
			name: { type: "string", max: 3, optional: true },
		};
		const token = "bot987654321:AAHsecretTOKENpartXYZ0123456789abcdefg";
		const errors = (await new GatewayValidator().compile(schema)({ token, webhook: { secret_token: "hunter22" }, name: "long" })) as Array<{ field: string; actual?: unknown }>;
		expect(JSON.stringify(errors)).not.toMatch(/AAHsecret|hunter22/);
		expect(errors).toEqual([
			expect.objectContaining({ field: "token", actual: "[redacted]" }),
			expect.objectContaining({ field: "webhook.secret_token", actual: "[redacted]" }),
			// Not a secret: kept, as fastest-validator gives it.
			expect.objectContaining({ field: "name", actual: 4 }),
		]);
	});

	it("in a broker: the call is rejected with VALIDATION_ERROR (a settled promise), and the handler never runs", async () => {
		const broker = new ServiceBroker({ logger: false, validator: new GatewayValidator() as unknown as Validators.Base });
		let ran = false;
		broker.createService({ name: "things", actions: { get: { params: SCHEMA, handler: () => (ran = true) } } });
		await broker.start();
		try {
			const outcome = broker.call("things.get", { id: { toString: false } });
			expect(outcome).toBeInstanceOf(Promise);
			expect(toApiError(await outcome.catch((err: unknown) => err))).toMatchObject({
				status: 400,
				body: { error: { code: "VALIDATION_ERROR", details: { fields: [expect.objectContaining({ field: "id" })] } } },
			});
			expect(ran).toBe(false);
			expect(await broker.call("things.get", { id: 3 })).toBe(true);
		} finally {
			await broker.stop();
		}
	});
});

describe("GatewayValidator: converted dates", () => {
	const check = new GatewayValidator().compile({ $$strict: true, since: { type: "date", convert: true, optional: true } });

	it.each([
		["a bare number", "1"],
		["a year", "2026"],
		["milliseconds", 1_893_456_000],
		["English", "December 7, 2026"],
		["Date.toString()", "Mon Dec 07 2026"],
		["a day that does not exist", "2026-02-30T00:00:00Z"],
		["February 29th of a common year", "2027-02-29"],
		["a time without its offset", "2026-12-07T16:00:00"],
		["hour 24", "2026-12-07T24:00:00Z"],
		["a space for the T", "2026-12-07 16:00:00Z"],
		["an empty string", ""],
		["an array", ["2026-12-07T16:00:00Z"]],
	])("refuses %s where an ISO 8601 time belongs (new Date() would have read one into it), naming the field", (_what, value) => {
		expect(check({ since: value })).toEqual([expect.objectContaining({ type: "date", field: "since", message: "The 'since' field must be an ISO 8601 time, such as 2026-12-07T16:00:00Z." })]);
	});

	it.each(["2026-12-07T16:00:00Z", "2026-12-07T16:00Z", "2026-12-07T16:00:00.123Z", "2026-12-07T18:00:00+02:00", "2028-02-29T00:00:00-05:30", "2026-12-07"])("takes %s", (value) => {
		expect(check({ since: value })).toBe(true);
	});

	it("takes a Date (the gateway's own callers), and leaves missing and null to the rule", () => {
		expect(check({ since: new Date() })).toBe(true);
		expect(check({})).toBe(true);
		expect(check({ since: null })).not.toEqual([expect.objectContaining({ type: "date", field: "since" })]);
	});
});

describe("GatewayValidator: converted numbers", () => {
	const check = new GatewayValidator().compile({ $$strict: true, id: { type: "number", integer: true, positive: true, max: Number.MAX_SAFE_INTEGER, convert: true }, limit: { type: "number", convert: true, optional: true } });

	it.each([
		["an array", [5]],
		["a boolean", true],
		["an empty string", ""],
		["blanks", "  "],
		["an object", { valueOf: 3 }],
		["a hexadecimal string", "0x10"],
		["an exponent", "1e3"],
		["a leading plus", "+1"],
		["padding", " 1"],
		["Infinity", "Infinity"],
	])("refuses %s where a number belongs (Number() would have made one of it), naming the field", (_what, value) => {
		expect(check({ id: value })).toEqual([expect.objectContaining({ type: "number", field: "id", message: "The 'id' field must be a number." })]);
	});

	it("takes numbers and numeric strings; leaves missing and null to the rule; bounds ids at 2^53", () => {
		expect(check({ id: 7 })).toBe(true);
		expect(check({ id: "7", limit: "10" })).toBe(true);
		expect(check({ id: "7", limit: "-2.5" })).toBe(true);
		expect(check({ id: 7, limit: null })).not.toEqual([expect.objectContaining({ type: "number", field: "limit", message: "The 'limit' field must be a number." })]);
		expect(check({ id: 2 ** 53 + 2 })).toEqual([expect.objectContaining({ field: "id", type: "numberMax" })]);
		expect(check({ id: 1e300 })).toEqual([expect.objectContaining({ field: "id", type: "numberMax" })]);
	});

	it("refuses an array longer than its max before fastest-validator looks at any item (its `unique` check is quadratic)", () => {
		const schema = { $$strict: true, ids: { type: "array", items: { type: "number" }, max: 3, unique: true, optional: true } };
		const check = new GatewayValidator().compile(schema);
		// 100,000 copies of one value: fastest-validator's duplicate search alone would take seconds.
		const huge = Array.from({ length: 100_000 }, () => 1);
		const spy = jest.spyOn(Array.prototype, "indexOf");
		try {
			expect(check({ ids: huge })).toEqual([
				{ type: "arrayMax", field: "ids", expected: 3, actual: 100_000, message: "The 'ids' field must contain less than or equal to 3 items." },
			]);
			expect(spy).not.toHaveBeenCalled();
		} finally {
			spy.mockRestore();
		}
		expect(check({ ids: [1, 2, 3] })).toBe(true);
		expect(check({ ids: [1, 1] })).toEqual([expect.objectContaining({ type: "arrayUnique", field: "ids" })]);
		expect(check({})).toBe(true);
		expect(toApiError({ name: "ValidationError", data: check({ ids: [1, 2, 3, 4] }) }).body.error).toMatchObject({ code: "VALIDATION_ERROR", message: "Invalid ids" });
	});

	it("names at most 20 problems in one answer, and counts the rest", () => {
		const check = new GatewayValidator().compile({ $$strict: true, id: { type: "number" } });
		const params = { id: 1, ...Object.fromEntries(Array.from({ length: 500 }, (_, i) => [`k${i}`, i])) };
		const { body } = toApiError({ name: "ValidationError", data: check(params) });
		const details = body.error.details as { fields: Array<{ field: string }>; more_fields: number };
		expect(details.fields).toHaveLength(20);
		expect(details.fields[0]).toEqual({ field: "k0", message: "Unknown field", type: "objectStrict" });
		expect(details.more_fields).toBe(480);
		expect(body.error.message).toMatch(/^Invalid k0, k1, .*, k19 and 480 more$/);
	});
});
