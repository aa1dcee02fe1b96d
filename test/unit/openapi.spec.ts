/**
 * The OpenAPI converter (services/api/openapi.ts, param-schema.ts): fastest-validator rules as
 * OpenAPI 3.0 schemas, checked where possible against fastest-validator itself, and routes as
 * operations (path, query, body, security, responses).
 */
import Validator from "fastest-validator";
import { ERROR_STATUS } from "../../lib/errors";
import { pageParams } from "../../lib/paging";
import { actionsFromServices, buildOpenApi, openApiPath, routesFromAliases, type ActionEntry, type RouteEntry } from "../../services/api/openapi";
import { isOptional, normalizeRule, paramsToSchema, parseShorthand, ruleToSchema } from "../../services/api/param-schema";

type Doc = { paths: Record<string, Record<string, Record<string, unknown>>>; components: Record<string, Record<string, unknown>> };
type Param = { name: string; in: string; required: boolean; schema: Record<string, unknown> };

const ID = { type: "number", integer: true, positive: true, convert: true };

describe("fastest-validator shorthand", () => {
	it("reads the type, bare flags and key:value flags", () => {
		expect(parseShorthand("string|optional|min:3|max:10|trim")).toEqual({ type: "string", optional: true, min: 3, max: 10, trim: true });
		expect(parseShorthand("boolean|convert:true")).toEqual({ type: "boolean", convert: true });
	});

	it("reads `type[]` as an array of that type, the flags belonging to the array", () => {
		expect(parseShorthand("number[]|optional")).toEqual({ type: "array", optional: true, items: { type: "number" } });
	});

	it("normalises objects written with $$type and lists of alternatives", () => {
		expect(normalizeRule({ $$type: "object|optional", name: "string" })).toEqual({ type: "object", optional: true, props: { name: "string" } });
		expect(normalizeRule(["string", "number"])).toEqual({ type: "multi", rules: ["string", "number"] });
	});

	it("agrees with fastest-validator on which fields may be left out", () => {
		const rules: unknown[] = [
			"string",
			"string|optional",
			{ type: "number", optional: true },
			{ type: "number", default: 5 },
			{ type: "string", nullable: true },
			["string|optional", "number"],
			["string|optional", "number|optional"],
			["string", "number"],
			{ $$type: "object|optional", a: "string" },
		];
		const v = new Validator();
		for (const rule of rules) {
			const acceptsMissing = v.compile({ field: rule as never })({}) === true;
			expect({ rule, optional: isOptional(rule) }).toEqual({ rule, optional: acceptsMissing });
		}
	});
});

describe("ruleToSchema", () => {
	it("strings: lengths, pattern (a RegExp in-process, dropped when it arrived as {} over the transporter), formats", () => {
		expect(ruleToSchema({ type: "string", min: 3, max: 64, pattern: /^[a-z]+$/ })).toEqual({ type: "string", minLength: 3, maxLength: 64, pattern: "^[a-z]+$" });
		expect(ruleToSchema({ type: "string", pattern: "^x$" })).toEqual({ type: "string", pattern: "^x$" });
		expect(ruleToSchema({ type: "string", pattern: {} })).toEqual({ type: "string" });
		expect(ruleToSchema({ type: "string", length: 4 })).toEqual({ type: "string", minLength: 4, maxLength: 4 });
		expect(ruleToSchema({ type: "email", max: 254, nullable: true })).toEqual({ type: "string", format: "email", maxLength: 254, nullable: true });
		expect(ruleToSchema("url")).toEqual({ type: "string", format: "uri" });
		expect(ruleToSchema({ type: "date", convert: true })).toEqual({ type: "string", format: "date-time" });
		expect(ruleToSchema({ type: "uuid" })).toEqual({ type: "string", format: "uuid" });
	});

	it("numbers: integer, bounds, positive", () => {
		expect(ruleToSchema(ID)).toEqual({ type: "integer", minimum: 1 });
		expect(ruleToSchema({ type: "number", integer: true, min: 1, max: 200 })).toEqual({ type: "integer", minimum: 1, maximum: 200 });
		expect(ruleToSchema({ type: "number", positive: true })).toEqual({ type: "number", minimum: 0, exclusiveMinimum: true });
		expect(ruleToSchema("number|min:0|default:5")).toEqual({ type: "number", minimum: 0, default: 5 });
	});

	it("enums, equal and booleans", () => {
		expect(ruleToSchema({ type: "enum", values: ["HTML", "Markdown"] })).toEqual({ type: "string", enum: ["HTML", "Markdown"] });
		expect(ruleToSchema({ type: "enum", values: [1, "a"] })).toEqual({ enum: [1, "a"] });
		expect(ruleToSchema({ type: "equal", value: true })).toEqual({ enum: [true] });
		expect(ruleToSchema("boolean")).toEqual({ type: "boolean" });
	});

	it("arrays: items, counts, uniqueness", () => {
		expect(ruleToSchema({ type: "array", items: { type: "enum", values: ["a", "b"] }, min: 1, max: 3, unique: true })).toEqual({
			type: "array",
			items: { type: "string", enum: ["a", "b"] },
			minItems: 1,
			maxItems: 3,
			uniqueItems: true,
		});
		expect(ruleToSchema("string[]")).toEqual({ type: "array", items: { type: "string" } });
	});

	it("objects: properties, required, strictness, nesting", () => {
		expect(ruleToSchema({ type: "object", strict: true, props: { a: "string", b: { type: "number", optional: true }, c: { type: "object", props: { d: "boolean" } } } })).toEqual({
			type: "object",
			properties: { a: { type: "string" }, b: { type: "number" }, c: { type: "object", properties: { d: { type: "boolean" } }, required: ["d"] } },
			required: ["a", "c"],
			additionalProperties: false,
		});
		expect(ruleToSchema({ type: "object" })).toEqual({ type: "object" });
		expect(ruleToSchema({ type: "record", value: "number" })).toEqual({ type: "object", additionalProperties: { type: "number" } });
	});

	it("alternatives as anyOf; server-only rules as an unconstrained schema; forbidden fields left out", () => {
		expect(ruleToSchema(["string", "number"])).toEqual({ anyOf: [{ type: "string" }, { type: "number" }] });
		expect(ruleToSchema({ type: "custom", check: () => true })).toEqual({});
		expect(ruleToSchema("any")).toEqual({});
		expect(paramsToSchema({ $$strict: true, a: "string", secret: "forbidden" })).toEqual({
			type: "object",
			properties: { a: { type: "string" } },
			required: ["a"],
			additionalProperties: false,
		});
	});
});

describe("openApiPath", () => {
	it("turns :name into {name}, keeping any regex as a pattern", () => {
		expect(openApiPath("/api/v1/chats/:id/permissions/:grant_id")).toEqual({ path: "/api/v1/chats/{id}/permissions/{grant_id}", names: [{ name: "id" }, { name: "grant_id" }] });
		expect(openApiPath("/x/:id(\\d+)")).toEqual({ path: "/x/{id}", names: [{ name: "id", pattern: "^\\d+$" }] });
		expect(openApiPath("/health")).toEqual({ path: "/health", names: [] });
	});
});

describe("buildOpenApi", () => {
	const route = (method: string, path: string, action: string | null, extra: Partial<RouteEntry> = {}): RouteEntry => ({ method, path, action, authenticated: true, mergeParams: true, ...extra });
	const actions = new Map<string, ActionEntry>([
		["things.list", { permission: "things:read", params: { $$strict: true, ...pageParams, kind: { type: "enum", values: ["a", "b"], optional: true } } }],
		["things.create", { permission: "things:write", description: "Makes a thing.", params: { $$strict: true, name: { type: "string", min: 1 }, size: { type: "number", optional: true } } }],
		["things.update", { permission: "things:write", params: { $$strict: true, id: ID, name: { type: "string", optional: true } } }],
		["things.remove", { params: { id: ID } }],
		["auth.login", { auth: false, params: { username: "string", password: "string" } }],
		["api.telegramPush", { params: { params: { type: "object", props: { path: { type: "string", max: 128 } } }, body: { type: "object" }, query: { type: "object", optional: true } } }],
	]);
	const doc = buildOpenApi(
		[
			route("GET", "/api/v1/things", "things.list"),
			route("POST", "/api/v1/things", "things.create"),
			route("PATCH", "/api/v1/things/:id", "things.update"),
			route("PUT", "/api/v1/things/:id", "things.update"),
			route("DELETE", "/api/v1/things/:id", "things.remove"),
			route("POST", "/api/v1/auth/login", "auth.login"),
			route("POST", "/api/v1/telegram/webhook/:path", "api.telegramPush", { authenticated: false, mergeParams: false }),
			route("GET", "/health", "api.health", { authenticated: false }),
			route("*", "/hook", null, { authenticated: false }),
		],
		actions,
		{ title: "T", version: "v1" },
	) as unknown as Doc;
	const op = (path: string, method: string) => doc.paths[path]![method]! as Record<string, unknown> & { parameters?: Param[] };

	it("GET /metrics is open without METRICS_TOKEN, and asks for it as a bearer token with one", () => {
		const metricsRoute = [route("GET", "/metrics", null, { authenticated: false })];
		const open = buildOpenApi(metricsRoute, actions, { title: "T", version: "v1" }) as unknown as Doc;
		expect((open.paths["/metrics"]!.get as Record<string, unknown>).security).toEqual([]);
		const guarded = buildOpenApi(metricsRoute, actions, { title: "T", version: "v1" }, { metricsTokenRequired: true }) as unknown as Doc & { components: { securitySchemes: Record<string, unknown> } };
		const get = guarded.paths["/metrics"]!.get as Record<string, unknown>;
		expect(get.security).toEqual([{ metricsToken: [] }]);
		expect(Object.keys(get.responses as object)).toContain("401");
		expect(guarded.components.securitySchemes.metricsToken).toMatchObject({ type: "http", scheme: "bearer" });
	});

	it("a GET's fields become query parameters; a list is described as a page", () => {
		const list = op("/api/v1/things", "get");
		expect(list.parameters!.map((p) => [p.name, p.in, p.required])).toEqual([
			["limit", "query", false],
			["cursor", "query", false],
			["kind", "query", false],
		]);
		expect(JSON.stringify(list.responses)).toContain("#/components/schemas/Page");
		expect(list.description).toMatch(/things:read/);
	});

	it("a POST's fields become a JSON (or form) body with its required fields and strictness, admitting the credential as api_key", () => {
		const create = op("/api/v1/things", "post");
		const schema = {
			type: "object",
			properties: { name: { type: "string", minLength: 1 }, size: { type: "number" }, api_key: expect.objectContaining({ type: "string" }) },
			required: ["name"],
			additionalProperties: false,
		};
		expect(create.requestBody).toEqual({ required: true, content: { "application/json": { schema }, "application/x-www-form-urlencoded": { schema } } });
		expect(create.description).toBe("Makes a thing. Needs the permission `things:write`.");
		expect(create["x-permission"]).toBe("things:write");
		expect(Object.keys(create.responses as object)).toEqual(expect.arrayContaining(["2XX", "400", "401", "403", "413", "415", "429", "500", "503"]));
	});

	it("path parameters take their schema from params and leave the body", () => {
		const update = op("/api/v1/things/{id}", "patch");
		expect(update.parameters).toEqual([{ name: "id", in: "path", required: true, schema: { type: "integer", minimum: 1 } }]);
		expect(update.requestBody).toMatchObject({ required: false, content: { "application/json": { schema: { properties: { name: { type: "string" } } } } } });
		expect(Object.keys(update.responses as object)).toContain("404");
		const remove = op("/api/v1/things/{id}", "delete");
		expect(remove.requestBody).toBeUndefined();
		expect((remove.responses as Record<string, Record<string, unknown>>)["2XX"]!.content).toBeUndefined();
	});

	it("operation ids are unique even when two routes call one action", () => {
		const ids = Object.values(doc.paths).flatMap((ops) => Object.values(ops).map((o) => o.operationId));
		expect(new Set(ids).size).toBe(ids.length);
		expect(op("/api/v1/things/{id}", "patch").operationId).toBe("thingsUpdate");
		expect(op("/api/v1/things/{id}", "put").operationId).toMatch(/^thingsUpdate_put/);
	});

	it("security: every credential form on authenticated routes, none for auth: false actions and open routes", () => {
		expect(op("/api/v1/things", "get").security).toEqual([{ bearerAuth: [] }, { apiKeyHeader: [] }, { apiKeyQuery: [] }, { tokenQuery: [] }]);
		expect(op("/api/v1/auth/login", "post").security).toEqual([]);
		expect(op("/health", "get").security).toEqual([]);
		expect(Object.keys(doc.components.securitySchemes!)).toEqual(["bearerAuth", "apiKeyHeader", "apiKeyQuery", "tokenQuery"]);
	});

	it("with mergeParams off, params/query/body are read apart; the gateway's own headers are declared", () => {
		const receive = op("/api/v1/telegram/webhook/{path}", "post");
		expect(receive.parameters!.map((p) => [p.name, p.in, p.required])).toEqual([
			["path", "path", true],
			["X-Telegram-Bot-Api-Secret-Token", "header", true],
		]);
		expect(receive.parameters![0]!.schema).toEqual({ type: "string", maxLength: 128 });
		expect(receive.requestBody).toEqual({ required: true, content: { "application/json": { schema: { type: "object" } } } });
		expect(Object.keys(receive.responses as object)).toContain("401");
	});

	it("an alias for any method is listed under every method, with an id from its path", () => {
		expect(Object.keys(doc.paths["/hook"]!)).toEqual(["get", "post", "put", "patch", "delete"]);
		expect(op("/hook", "get").operationId).toBe("getHook");
	});

	it("the error format is one shared schema, with a response for every status of lib/errors", () => {
		const responses = doc.components.responses as Record<string, { content: unknown }>;
		for (const status of new Set(Object.values(ERROR_STATUS))) {
			expect(responses[`Error${status}`]!.content).toEqual({ "application/json": { schema: { $ref: "#/components/schemas/Error" } } });
		}
		const error = (doc.components.schemas as Record<string, { properties: { error: { properties: { code: { enum: string[] } } } } }>).Error!;
		expect(error.properties.error.properties.code.enum.sort()).toEqual(Object.keys(ERROR_STATUS).sort());
	});
});

describe("routesFromAliases and actionsFromServices", () => {
	it("read moleculer-web aliases and the registry's service list", () => {
		const routes = routesFromAliases([
			{ method: "GET", fullPath: "/api/v1/things", action: "things.list", route: { opts: { authentication: true } } },
			{ method: "POST", fullPath: "/api/v1/telegram/webhook/:path", action: "api.telegramPush", route: { opts: { mergeParams: false } } },
			{ method: "*", fullPath: "/x", action: null },
		]);
		expect(routes).toEqual([
			{ method: "GET", path: "/api/v1/things", action: "things.list", authenticated: true, mergeParams: true },
			{ method: "POST", path: "/api/v1/telegram/webhook/:path", action: "api.telegramPush", authenticated: false, mergeParams: false },
			{ method: "*", path: "/x", action: null, authenticated: false, mergeParams: true },
		]);
		const actions = actionsFromServices([{ actions: { "things.list": { name: "things.list", params: { a: "string" }, permission: "things:read", rest: "GET /things" } } }, {}]);
		expect(actions.get("things.list")).toEqual({ params: { a: "string" }, auth: undefined, permission: "things:read", description: undefined });
	});
});
