import { ServiceBroker, type Middleware } from "moleculer";
import { toApiError } from "../../lib/errors";
import { NullParamsMiddleware } from "../../lib/middlewares/null-params";

describe("NullParamsMiddleware", () => {
	const broker = new ServiceBroker({ logger: false, middlewares: [NullParamsMiddleware as unknown as Middleware] });
	const seen: unknown[] = [];
	broker.createService({
		name: "things",
		actions: {
			update: {
				rest: "PATCH /things/:id",
				params: {
					$$strict: true,
					id: { type: "number", convert: true },
					flag: { type: "boolean", optional: true },
					note: { type: "string", optional: true, nullable: true },
					tags: [{ type: "string", optional: true }, { type: "array", optional: true, nullable: true }],
					short: "string|optional",
				},
				handler: (ctx) => (seen.push(ctx.params), "ok"),
			},
			internal: {
				params: { flag: { type: "boolean", optional: true } },
				handler: () => "ok",
			},
		},
	});
	beforeAll(() => broker.start());
	afterAll(() => broker.stop());

	it("refuses null in an optional field that is not nullable, naming every such field, before the handler runs", async () => {
		seen.length = 0;
		const err = await broker.call("things.update", { id: 1, flag: null, short: null }).catch((e: unknown) => e);
		expect(toApiError(err)).toMatchObject({
			status: 400,
			body: { error: { code: "VALIDATION_ERROR", details: { fields: [expect.objectContaining({ field: "flag" }), expect.objectContaining({ field: "short" })] } } },
		});
		expect(seen).toEqual([]);
	});

	it("lets null through where a rule (or one of several rules) is nullable, and absent fields alone", async () => {
		expect(await broker.call("things.update", { id: 1, note: null, tags: null })).toBe("ok");
		expect(await broker.call("things.update", { id: 1, flag: true })).toBe("ok");
	});

	it("leaves actions without a REST route as they are", async () => {
		expect(await broker.call("things.internal", { flag: null })).toBe("ok");
	});
});
