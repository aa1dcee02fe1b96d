/**
 * GET /api/openapi.json against the contract: every route API.md lists (method + path) is in the
 * generated document, the document is well formed, and every operation in it is a route the gateway
 * really serves. Also on a two-node layout, where most actions live on the other node.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { ADMIN_PASSWORD, adminToken, api, createKey, me } from "../support/auth";
import { http, startTestGateway, type TestGateway } from "../support/harness";
import { ISO_TIME_PATTERN } from "../../services/api/param-schema";

const API_MD = join(__dirname, "..", "..", "..", "shared", "API.md");
const METHODS = ["get", "post", "put", "patch", "delete"];

type Operation = { operationId: string; security?: unknown[]; parameters?: Array<{ name: string; in: string }>; responses: Record<string, unknown>; requestBody?: unknown };
type OpenApiDoc = { openapi: string; info: { title: string; version: string }; paths: Record<string, Record<string, Operation>>; components: Record<string, Record<string, unknown>> };

/**
 * Every `METHOD[/METHOD...] /path` in API.md's backticks. Paths are under /api/v1 unless they start
 * with /api/ or sit in the "Outside `/api/v1`" paragraph; `:id` and `<path>` become `{id}`, `{path}`.
 */
function routesOfApiMd(markdown: string): string[] {
	const routes = new Set<string>();
	for (const block of markdown.split(/\n\s*\n/)) {
		const outside = /^Outside `\/api\/v1`/.test(block.trim());
		for (const match of block.matchAll(/`((?:GET|POST|PUT|PATCH|DELETE)(?:\/(?:GET|POST|PUT|PATCH|DELETE))*)\s+(\/[^`\s?{]*)/g)) {
			const rawPath = match[2]!.replace(/\/+$/, "");
			const absolute = outside || rawPath.startsWith("/api/");
			const path = (absolute ? rawPath : `/api/v1${rawPath}`).replace(/:([A-Za-z0-9_]+)/g, "{$1}").replace(/<([A-Za-z0-9_]+)>/g, "{$1}");
			for (const method of match[1]!.split("/")) routes.add(`${method} ${path}`);
		}
	}
	return [...routes].sort();
}

function operations(doc: OpenApiDoc): Array<{ method: string; path: string; op: Operation }> {
	return Object.entries(doc.paths).flatMap(([path, ops]) => Object.entries(ops).filter(([m]) => METHODS.includes(m)).map(([method, op]) => ({ method, path, op })));
}

/** Every `$ref` in the document points at something the document holds. */
function danglingRefs(doc: unknown): string[] {
	const missing: string[] = [];
	const visit = (node: unknown): void => {
		if (Array.isArray(node)) return node.forEach(visit);
		if (!node || typeof node !== "object") return;
		for (const [key, value] of Object.entries(node)) {
			if (key === "$ref" && typeof value === "string") {
				const target = value.replace(/^#\//, "").split("/").reduce<unknown>((at, part) => (at as Record<string, unknown> | undefined)?.[part], doc);
				if (target === undefined) missing.push(value);
			} else visit(value);
		}
	};
	visit(doc);
	return missing;
}

async function fetchDoc(gw: TestGateway, until: (doc: OpenApiDoc) => boolean = () => true): Promise<OpenApiDoc> {
	// Routes of services on other nodes appear once moleculer-web has rebuilt its aliases (debounced).
	for (let attempt = 0; ; attempt++) {
		const res = await http<OpenApiDoc>(gw.baseUrl, "GET", "/api/openapi.json");
		expect(res.status).toBe(200);
		if (until(res.body) || attempt >= 50) return res.body;
		await new Promise((r) => setTimeout(r, 100));
	}
}

describe("routesOfApiMd", () => {
	it("reads method lists, relative and absolute paths, and the paragraph outside /api/v1", () => {
		const md = [
			"| `POST/GET /users`, `GET/PATCH/DELETE /users/:id` | admin |",
			"| `GET /chats?bot_id=`, `POST /webhooks/:id/replay {since}` | x |",
			"",
			"Outside `/api/v1`: `GET /health`, `GET\n/api/openapi.json` (open).",
			"",
			"`POST /api/v1/telegram/webhook/<path>`: the receiver. `POST <url>` is not a route.",
		].join("\n");
		expect(routesOfApiMd(md)).toEqual(
			[
				"POST /api/v1/users",
				"GET /api/v1/users",
				"GET /api/v1/users/{id}",
				"PATCH /api/v1/users/{id}",
				"DELETE /api/v1/users/{id}",
				"GET /api/v1/chats",
				"POST /api/v1/webhooks/{id}/replay",
				"GET /health",
				"GET /api/openapi.json",
				"POST /api/v1/telegram/webhook/{path}",
			].sort(),
		);
	});
});

describe("GET /api/openapi.json", () => {
	let gw: TestGateway;
	let doc: OpenApiDoc;
	beforeAll(async () => {
		gw = await startTestGateway({ env: { ADMIN_PASSWORD } });
		doc = await fetchDoc(gw);
	});
	afterAll(() => gw.stop());

	it("lists 409 where a route answers it, saying when, and not on reads", async () => {
		const token = await adminToken(gw);
		const user = { username: "conflicted", password: "a-long-enough-password" };
		expect((await api(gw.baseUrl, "POST", "/users", token, user)).status).toBe(201);
		const conflicts = [
			["post", "/api/v1/users", await api(gw.baseUrl, "POST", "/users", token, user)],
			["delete", "/api/v1/users/{id}", await api(gw.baseUrl, "DELETE", `/users/${(await me(gw.baseUrl, token)).body.id}`, token)],
		] as const;
		const key = await createKey(gw.baseUrl, token);
		expect((await api(gw.baseUrl, "DELETE", `/apikeys/${key.id}`, token)).status).toBe(204);
		const rotated = await api(gw.baseUrl, "POST", `/apikeys/${key.id}/rotate`, token);
		for (const [method, path, res] of [...conflicts, ["post", "/api/v1/apikeys/{id}/rotate", rotated] as const]) {
			expect({ route: `${method} ${path}`, status: res.status }).toEqual({ route: `${method} ${path}`, status: 409 });
			expect(doc.paths[path]![method]!.responses["409"]).toMatchObject({ description: expect.stringMatching(/^CONFLICT: .+\.$/), content: { "application/json": expect.anything() } });
		}
		const documented = operations(doc).filter(({ op }) => op.responses["409"] !== undefined);
		expect(documented.length).toBeGreaterThanOrEqual(12);
		expect(documented.filter(({ method }) => method === "get")).toEqual([]);
	});

	it("is open and JSON", async () => {
		const res = await http(gw.baseUrl, "GET", "/api/openapi.json");
		expect(res.status).toBe(200);
		expect(res.headers.get("content-type")).toMatch(/application\/json/);
		expect(res.headers.get("x-request-id")).toBeTruthy();
	});

	it("holds every route API.md lists", () => {
		const contract = routesOfApiMd(readFileSync(API_MD, "utf8"));
		expect(contract.length).toBeGreaterThan(40);
		const documented = new Set(operations(doc).map(({ method, path }) => `${method.toUpperCase()} ${path}`));
		expect(contract.filter((route) => !documented.has(route))).toEqual([]);
	});

	it("is a well-formed OpenAPI 3.0 document: unique operation ids, declared path parameters, no dangling $ref", () => {
		expect(doc.openapi).toMatch(/^3\.0\.\d+$/);
		expect(typeof doc.info.title).toBe("string");
		expect(typeof doc.info.version).toBe("string");
		const ops = operations(doc);
		const ids = ops.map(({ op }) => op.operationId);
		expect(ids.every((id) => typeof id === "string" && id.length > 0)).toBe(true);
		expect(new Set(ids).size).toBe(ids.length);
		for (const { path, method, op } of ops) {
			const templated = [...path.matchAll(/\{([^}]+)\}/g)].map((m) => m[1]).sort();
			const declared = (op.parameters ?? []).filter((p) => p.in === "path").map((p) => p.name).sort();
			expect({ route: `${method} ${path}`, declared }).toEqual({ route: `${method} ${path}`, declared: templated });
			expect(Object.keys(op.responses).length).toBeGreaterThan(0);
		}
		expect(danglingRefs(doc)).toEqual([]);
		expect(Object.keys(doc.components.securitySchemes!)).toEqual(expect.arrayContaining(["bearerAuth", "apiKeyHeader", "apiKeyQuery"]));
	});

	it("describes parameters from the actions' schemas", () => {
		const send = doc.paths["/api/v1/chats/{id}/messages"]!.post!;
		expect(send.requestBody).toMatchObject({
			required: true,
			content: { "application/json": { schema: { required: ["text"], properties: { text: { type: "string", minLength: 1, maxLength: 16384, description: expect.stringContaining("parse_mode") }, parse_mode: { enum: ["HTML", "Markdown", "MarkdownV2"] } } } } },
		});
		expect(send.parameters).toEqual(expect.arrayContaining([expect.objectContaining({ name: "id", in: "path" }), { $ref: "#/components/parameters/IdempotencyKey" }]));
		const history = doc.paths["/api/v1/chats/{id}/messages"]!.get!;
		expect(history.parameters!.filter((p) => p.in === "query").map((p) => p.name).sort()).toEqual(["after_seq", "before_seq", "cursor", "limit"]);
		expect(doc.paths["/api/v1/auth/login"]!.post!.security).toEqual([]);
		expect(doc.paths["/api/v1/bots"]!.post!).toMatchObject({ "x-permission": "bots:write" });
	});

	it("lists only routes the gateway serves: each answers, and the protected ones want credentials", async () => {
		const open = operations(doc).filter(({ op }) => (op.security ?? []).length === 0).map(({ method, path }) => `${method.toUpperCase()} ${path}`);
		expect(open.sort()).toEqual(
			["GET /api/openapi.json", "GET /health", "GET /metrics", "GET /ready", "POST /api/v1/auth/login", "POST /api/v1/auth/logout", "POST /api/v1/auth/refresh", "POST /api/v1/telegram/webhook/{path}"].sort(),
		);
		for (const { method, path, op } of operations(doc)) {
			if (path === "/api/v1/auth/login" || path === "/api/v1/auth/refresh" || path === "/api/v1/auth/logout") continue; // throttled: covered by their own tests
			const url = path.replace(/\{[^}]+\}/g, "999999");
			const res = await http(gw.baseUrl, method.toUpperCase(), url, BODY_METHODS.has(method) ? { body: {} } : {});
			expect({ route: `${method} ${path}`, body: res.body }).not.toEqual({ route: `${method} ${path}`, body: { error: { code: "NOT_FOUND", message: "Not found" } } });
			if ((op.security ?? []).length > 0) expect({ route: `${method} ${path}`, status: res.status }).toEqual({ route: `${method} ${path}`, status: 401 });
		}
	});
});

const BODY_METHODS = new Set(["post", "put", "patch"]);

describe("GET /api/openapi.json on an api node whose services run elsewhere", () => {
	let gw: TestGateway;
	beforeAll(async () => {
		gw = await startTestGateway({
			nodes: [
				["api", "auth", "realtime"],
				["auth", "bots", "chats", "ingest", "broker", "delivery"],
			],
		});
	});
	afterAll(() => gw.stop());

	it("documents the remote actions' routes and parameters the same way", async () => {
		const doc = await fetchDoc(gw, (d) => Boolean(d.paths["/api/v1/webhooks/{id}/replay"] && d.paths["/api/v1/bots"]));
		const contract = routesOfApiMd(readFileSync(API_MD, "utf8"));
		const documented = new Set(operations(doc).map(({ method, path }) => `${method.toUpperCase()} ${path}`));
		expect(contract.filter((route) => !documented.has(route))).toEqual([]);
		const create = doc.paths["/api/v1/bots"]!.post!;
		expect(create.requestBody).toMatchObject({ required: true, content: { "application/json": { schema: { required: ["token"], properties: { token: { type: "string" } } } } } });
		expect(doc.paths["/api/v1/webhooks/{id}/replay"]!.post!.requestBody).toMatchObject({
			content: { "application/json": { schema: { properties: { since: { type: "string", pattern: ISO_TIME_PATTERN }, since_seq: { type: "integer", minimum: 0 } }, oneOf: [{ required: ["since"] }, { required: ["since_seq"] }] } } },
		});
	});
});
