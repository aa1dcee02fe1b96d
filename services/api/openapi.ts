/**
 * GET /api/openapi.json: an OpenAPI 3.0 document built at request time from what the gateway
 * actually serves. Routes come from moleculer-web's alias table (itself generated from the actions'
 * `rest` annotations, plus the explicit aliases), and each operation's parameters and body from the
 * called action's fastest-validator `params`, read from the broker's registry (remote actions too).
 * Nothing here lists routes by hand, so the document cannot drift from the gateway.
 */
import { CREDENTIAL_ENDED_REASONS, ERROR_STATUS, type ApiErrorCode } from "../../lib/errors";
import { DEFAULT_LIMIT, MAX_LIMIT } from "../../lib/paging";
import { fieldSchema, isOptional, normalizeRule, paramFields, ruleToSchema, type Schema } from "./param-schema";
import { constrainedBody, OTHER_ANSWERS, PLAIN_ROUTE_ERRORS, responseSchemas, SUCCESS, successResponses } from "./openapi-schemas";

export interface RouteEntry {
	/** GET, POST, ... or "*" (any method). */
	method: string;
	/** The full path in moleculer-web's syntax: `/api/v1/bots/:id`. */
	path: string;
	/** The action it calls; null for an alias served by a function. */
	action: string | null;
	/** The route resolves credentials (an action with `auth: false` is still public). */
	authenticated: boolean;
	/** false: the action gets `{params, query, body}` apart (moleculer-web's mergeParams). */
	mergeParams: boolean;
}

/** What the registry says about an action (see actionsFromServices). */
export interface ActionEntry {
	params?: Record<string, unknown>;
	auth?: boolean;
	permission?: string;
	description?: string;
	/** When the action answers 409 CONFLICT (its `conflict` annotation). */
	conflict?: string;
}

/** The loose shape of a moleculer-web Alias: only the fields read here. */
export interface AliasLike {
	method?: string;
	fullPath?: string;
	action?: string | null;
	route?: { opts?: { authentication?: boolean; mergeParams?: boolean } };
}

/** Headers the gateway reads itself, which no params schema can declare. */
const ACTION_HEADERS: Record<string, Schema[]> = {
	"api.telegramPush": [
		{ name: "X-Telegram-Bot-Api-Secret-Token", in: "header", required: true, description: "The bot's secret_token, as given to Telegram by setWebhook.", schema: { type: "string" } },
	],
	"chats.send": [{ $ref: "#/components/parameters/IdempotencyKey" }],
};

const ANY_METHOD = ["get", "post", "put", "patch", "delete"];
const BODY_METHODS = new Set(["post", "put", "patch"]);
const ALL_CREDENTIALS = [{ bearerAuth: [] }, { apiKeyHeader: [] }, { apiKeyQuery: [] }, { tokenQuery: [] }];

export function routesFromAliases(aliases: AliasLike[]): RouteEntry[] {
	return aliases
		.filter((a) => typeof a.fullPath === "string")
		.map((a) => ({
			method: (a.method ?? "*").toUpperCase(),
			path: a.fullPath!,
			action: typeof a.action === "string" ? a.action : null,
			authenticated: Boolean(a.route?.opts?.authentication),
			mergeParams: a.route?.opts?.mergeParams !== false,
		}));
}

/** `registry.getServiceList({ withActions: true })` as action name -> what the document needs. */
export function actionsFromServices(services: Array<{ actions?: Record<string, Record<string, unknown>> }>): Map<string, ActionEntry> {
	const actions = new Map<string, ActionEntry>();
	for (const service of services) {
		for (const [name, def] of Object.entries(service.actions ?? {})) {
			if (actions.has(name)) continue;
			actions.set(name, {
				params: def.params && typeof def.params === "object" ? (def.params as Record<string, unknown>) : undefined,
				auth: typeof def.auth === "boolean" ? def.auth : undefined,
				permission: typeof def.permission === "string" ? def.permission : undefined,
				description: typeof def.description === "string" ? def.description : undefined,
				conflict: typeof def.conflict === "string" ? def.conflict : undefined,
			});
		}
	}
	return actions;
}

/** `/bots/:id` -> `/bots/{id}`, with the names of the path parameters (and any regex they carry). */
export function openApiPath(path: string): { path: string; names: Array<{ name: string; pattern?: string }> } {
	const names: Array<{ name: string; pattern?: string }> = [];
	const converted = path.replace(/:([A-Za-z0-9_]+)(\(((?:\\.|[^()])+)\))?\??/g, (_m, name: string, _g: string, pattern?: string) => {
		names.push(pattern ? { name, pattern: `^${pattern}$` } : { name });
		return `{${name}}`;
	});
	return { path: converted, names };
}

function operationId(route: RouteEntry, method: string, path: string): string {
	if (route.action) return route.action.replace(/[.$]+([a-zA-Z0-9])/g, (_m, c: string) => c.toUpperCase());
	return method + path.replace(/[{}]/g, "").replace(/[^A-Za-z0-9]+([A-Za-z0-9])/g, (_m, c: string) => c.toUpperCase());
}

const ERROR_CONTENT = { "application/json": { schema: { $ref: "#/components/schemas/Error" } } };

function errorRef(status: number): Schema {
	return { $ref: `#/components/responses/Error${status}` };
}

/**
 * The body encodings a route takes: /api/v1 (the authenticated route) reads form bodies as well as
 * JSON, and a secured operation's body may carry the credential as `api_key` (API.md).
 */
function requestContent(body: Schema, takesForms: boolean, secured: boolean): Schema {
	const schema = secured && body.type === "object" ? { ...body, properties: { ...(body.properties as Schema | undefined), api_key: { type: "string", description: "The credential, for clients that cannot set headers (taken out before the action sees the body)." } } } : body;
	return { "application/json": { schema }, ...(takesForms ? { "application/x-www-form-urlencoded": { schema } } : {}) };
}

function buildOperation(route: RouteEntry, method: string, action: ActionEntry | undefined): Schema {
	const { path, names } = openApiPath(route.path);
	const params = action?.params;
	// With mergeParams off the action's params are {params, query, body}; otherwise one flat object.
	const nested = (key: string) => (params?.[key] ? normalizeRule(params[key]) : undefined);
	const pathRules = route.mergeParams ? params : ((nested("params")?.props as Record<string, unknown>) ?? {});
	const parameters: Schema[] = names.map(({ name, pattern }) => ({
		name,
		in: "path",
		required: true,
		schema: pathRules?.[name] !== undefined ? (route.mergeParams ? fieldSchema : ruleToSchema)(pathRules[name]) : { type: "string", ...(pattern ? { pattern } : {}) },
	}));
	const pathNames = new Set(names.map((n) => n.name));

	let body: Schema | undefined;
	let bodyRequired = false;
	if (route.mergeParams) {
		const rest = paramFields(params).filter(([name]) => !pathNames.has(name));
		if (BODY_METHODS.has(method)) {
			if (rest.length > 0) {
				body = ruleToSchema({ type: "object", props: Object.fromEntries(rest), strict: params?.$$strict });
				const properties = body.properties as Record<string, Schema>;
				for (const [name, rule] of rest) if (properties[name]) properties[name] = fieldSchema(rule);
				bodyRequired = rest.some(([, rule]) => !isOptional(rule));
			}
		} else {
			for (const [name, rule] of rest) parameters.push({ name, in: "query", required: !isOptional(rule), schema: fieldSchema(rule) });
		}
	} else {
		const query = nested("query")?.props as Record<string, unknown> | undefined;
		for (const [name, rule] of paramFields(query)) parameters.push({ name, in: "query", required: !isOptional(rule), schema: ruleToSchema(rule) });
		if (BODY_METHODS.has(method) && params?.body !== undefined) {
			body = ruleToSchema(params.body);
			bodyRequired = !isOptional(params.body);
		}
	}
	const headers = (route.action && ACTION_HEADERS[route.action]) || [];
	parameters.push(...headers);
	// A rule the action checks in its handler (exactly one of two fields): said on the body.
	const constrained = body ? constrainedBody(route.action, body) : null;
	if (constrained) {
		body = constrained;
		bodyRequired = true;
	}

	const secured = route.authenticated && action?.auth !== false;
	const fields = new Set(paramFields(params).map(([name]) => name));
	const paged = fields.has("limit") && fields.has("cursor");
	const answerKey = route.action ?? `${method.toUpperCase()} ${path}`;
	const responses = successResponses(SUCCESS[answerKey], method, paged, { "X-Request-Id": { $ref: "#/components/headers/X-Request-Id" }, ...(secured ? RATE_LIMIT_HEADERS : {}) });
	// The open probes and documents take no parameters: none of the answers about a request's shape or rate.
	const plain = !route.authenticated && parameters.length === 0 && !body;
	if (!plain) responses["400"] = errorRef(400);
	if (route.authenticated || headers.some((h) => h.in === "header" && h.required)) responses["401"] = errorRef(401);
	if (action?.permission) responses["403"] = errorRef(403);
	if (names.length > 0) responses["404"] = errorRef(404);
	// A response of its own: OpenAPI 3.0 ignores a description beside a $ref.
	if (action?.conflict) responses["409"] = { description: `CONFLICT: ${action.conflict}.`, headers: { "X-Request-Id": { $ref: "#/components/headers/X-Request-Id" } }, content: ERROR_CONTENT };
	if (body) Object.assign(responses, { "413": errorRef(413), "415": errorRef(415) });
	if (route.authenticated) responses["429"] = errorRef(429);
	for (const status of plain ? PLAIN_ROUTE_ERRORS : ["500", "503"]) responses[status] = errorRef(Number(status));
	Object.assign(responses, OTHER_ANSWERS[answerKey], { default: { $ref: "#/components/responses/Error" } });

	const description = [action?.description, action?.permission ? `Needs the permission \`${action.permission}\`.` : null, paged ? `A page of at most \`limit\` (default ${DEFAULT_LIMIT}, max ${MAX_LIMIT}); pass \`next_cursor\` as \`cursor\` for the next one.` : null]
		.filter(Boolean)
		.join(" ");
	return {
		operationId: operationId(route, method, path),
		summary: route.action ?? `${method.toUpperCase()} ${path}`,
		...(description ? { description } : {}),
		tags: [route.action ? route.action.split(".")[0] : "gateway"],
		security: secured ? ALL_CREDENTIALS : [],
		...(parameters.length > 0 ? { parameters } : {}),
		...(body ? { requestBody: { required: bodyRequired, content: requestContent(body, route.authenticated, secured) } } : {}),
		responses,
		...(route.action ? { "x-moleculer-action": route.action } : {}),
		...(action?.permission ? { "x-permission": action.permission } : {}),
	};
}

const RATE_LIMIT_HEADERS = {
	"X-RateLimit-Limit": { $ref: "#/components/headers/X-RateLimit-Limit" },
	"X-RateLimit-Remaining": { $ref: "#/components/headers/X-RateLimit-Remaining" },
	"X-RateLimit-Reset": { $ref: "#/components/headers/X-RateLimit-Reset" },
};

function components(): Schema {
	const statuses = new Map<number, ApiErrorCode[]>();
	for (const [code, status] of Object.entries(ERROR_STATUS) as Array<[ApiErrorCode, number]>) statuses.set(status, [...(statuses.get(status) ?? []), code]);
	const responses: Record<string, Schema> = { Error: { description: "An error, in the gateway's error format.", content: ERROR_CONTENT } };
	for (const [status, codes] of statuses) {
		responses[`Error${status}`] = {
			description: `Error: ${codes.join(" or ")}.`,
			headers: { "X-Request-Id": { $ref: "#/components/headers/X-Request-Id" }, ...(status === 429 || status === 503 ? { "Retry-After": { $ref: "#/components/headers/Retry-After" } } : {}) },
			content: ERROR_CONTENT,
		};
	}
	const intHeader = (description: string) => ({ description, schema: { type: "integer" } });
	return {
		securitySchemes: {
			bearerAuth: { type: "http", scheme: "bearer", bearerFormat: "JWT or tgw_ API key", description: "An access token from POST /api/v1/auth/login, or an API key." },
			apiKeyHeader: { type: "apiKey", in: "header", name: "X-API-Key", description: "An API key (tgw_...)." },
			apiKeyQuery: { type: "apiKey", in: "query", name: "api_key", description: "A JWT or an API key in the query (for simple clients); `api_key` in a JSON or form body works too." },
			tokenQuery: { type: "apiKey", in: "query", name: "token", description: "Same as api_key." },
		},
		parameters: {
			IdempotencyKey: {
				name: "Idempotency-Key",
				in: "header",
				required: false,
				description: "1-64 letters, digits, '.', '_', ':' or '-'. A retried request with the same key returns what the first one created instead of doing it again.",
				schema: { type: "string", pattern: "^[A-Za-z0-9._:-]{1,64}$" },
			},
		},
		headers: {
			"X-Request-Id": { description: "The request's id: the caller's own when sane, otherwise generated.", schema: { type: "string" } },
			"X-RateLimit-Limit": intHeader("Requests per second allowed to this principal."),
			"X-RateLimit-Remaining": intHeader("Requests left in the current window."),
			"X-RateLimit-Reset": intHeader("Seconds until the window resets."),
			"Retry-After": intHeader("Seconds to wait before trying again."),
			Location: { description: "The path (under /api/v1) of what the request created, or of the queued message to follow.", schema: { type: "string" } },
		},
		schemas: {
			Error: {
				type: "object",
				required: ["error"],
				properties: {
					error: {
						type: "object",
						required: ["code", "message"],
						properties: {
							code: { type: "string", enum: Object.keys(ERROR_STATUS) },
							message: { type: "string" },
							details: {
								type: "object",
								additionalProperties: true,
								description: "VALIDATION_ERROR: `fields`, one entry per offending field, at most 20 (`more_fields` counts the rest); RATE_LIMITED: `retry_after` in seconds (a full send queue adds `queue` and `limit`); a cap reached (CONFLICT for API keys) names its `limit`; UNAUTHORIZED for a credential that was genuine but has ended: `reason` (`expired`, `revoked` or `user_disabled`).",
								properties: {
									fields: { type: "array", items: { $ref: "#/components/schemas/FieldProblem" }, maxItems: 20 },
									more_fields: { type: "integer" },
									retry_after: { type: "integer" },
									reason: { type: "string", enum: [...CREDENTIAL_ENDED_REASONS] },
								},
							},
						},
					},
				},
			},
			FieldProblem: { type: "object", required: ["field", "message"], properties: { field: { type: "string" }, message: { type: "string" }, type: { type: "string" } } },
			// For a list route this document does not know yet (openapi-schemas.ts names the others' items).
			Page: {
				type: "object",
				required: ["data", "next_cursor"],
				properties: { data: { type: "array", items: { type: "object" } }, next_cursor: { type: "string", nullable: true, description: "null on the last page." } },
			},
			...responseSchemas(),
		},
		responses,
	};
}

export interface OpenApiInfo {
	title: string;
	version: string;
	description?: string;
}

export interface OpenApiOptions {
	/** METRICS_TOKEN is set: GET /metrics wants it as a bearer token. */
	metricsTokenRequired?: boolean;
}

export function buildOpenApi(routes: RouteEntry[], actions: Map<string, ActionEntry>, info: OpenApiInfo, options: OpenApiOptions = {}): Schema {
	const paths: Record<string, Record<string, Schema>> = {};
	const usedIds = new Set<string>();
	const sorted = [...routes].sort((a, b) => a.path.localeCompare(b.path) || a.method.localeCompare(b.method));
	for (const route of sorted) {
		const { path } = openApiPath(route.path);
		const methods = route.method === "*" ? ANY_METHOD : [route.method.toLowerCase()];
		for (const method of methods) {
			if (paths[path]?.[method]) continue; // the first alias wins, as in moleculer-web's own matching
			const operation = buildOperation(route, method, route.action ? actions.get(route.action) : undefined);
			let id = operation.operationId as string;
			if (usedIds.has(id)) id = `${id}_${method}${usedIds.size}`;
			usedIds.add(id);
			(paths[path] ??= {})[method] = { ...operation, operationId: id };
		}
	}
	const metrics = paths["/metrics"]?.get;
	const schemes = components();
	if (metrics && options.metricsTokenRequired) {
		// Served by a plain function, so the alias table cannot say it is guarded: the config does.
		metrics.security = [{ metricsToken: [] }];
		(metrics.responses as Record<string, Schema>)["401"] = errorRef(401);
		(schemes.securitySchemes as Record<string, Schema>).metricsToken = { type: "http", scheme: "bearer", description: "The METRICS_TOKEN the node was started with." };
	}
	return { openapi: "3.0.3", info, paths, components: schemes };
}
