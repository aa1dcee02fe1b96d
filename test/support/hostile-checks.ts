/**
 * The checks every hostile-input run ends with: never a 5xx, the API's error shape without internals,
 * nothing stored for a refusal, no prototype pollution, the gateway still serving, memory bounded;
 * and the REST routes the gateway really serves (moleculer-web's alias table and the actions' params).
 */
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import { QueryTypes } from "sequelize";
import type { ServiceBroker } from "moleculer";
import type { Database } from "../../lib/db/connection";
import { ERROR_STATUS } from "../../lib/errors";
import { http, type HttpResult } from "./harness";

/** A REST route as the gateway serves it, with the fields its action's params name. */
export interface RestRoute {
	method: string;
	/** `/api/v1/bots/:id` */
	path: string;
	action: string;
	/** Path parameter names, in order. */
	pathParams: string[];
	/** The other params of the action: body fields (POST/PUT/PATCH) or query fields (GET/DELETE). */
	fields: string[];
}

/**
 * Every REST route under /api/v1 that calls an action, read from the api service's alias table
 * (moleculer-web builds it from the `rest` annotations) and the registry's action params: a route
 * added later is fuzzed too.
 */
export function restRoutes(broker: ServiceBroker): RestRoute[] {
	const api = broker.getLocalService("api") as unknown as { aliases: Array<{ method: string; fullPath: string; action?: unknown }> };
	const actions = new Map<string, Record<string, unknown>>();
	for (const item of broker.registry.getActionList({}) as unknown as Array<{ name: string; action?: { params?: Record<string, unknown> } }>) {
		if (item.action?.params && !actions.has(item.name)) actions.set(item.name, item.action.params);
	}
	return api.aliases
		.filter((a) => a.fullPath.startsWith("/api/v1/") && typeof a.action === "string" && a.method !== "*")
		.filter((a) => !a.fullPath.startsWith("/api/v1/telegram/"))
		.map((a) => {
			const pathParams = [...a.fullPath.matchAll(/:([A-Za-z0-9_]+)/g)].map((m) => m[1]!);
			const params = actions.get(a.action as string) ?? {};
			const fields = Object.keys(params).filter((k) => !k.startsWith("$$") && !pathParams.includes(k));
			return { method: a.method.toUpperCase(), path: a.fullPath, action: a.action as string, pathParams, fields };
		})
		.sort((x, y) => x.path.localeCompare(y.path) || x.method.localeCompare(y.method));
}

/** The rows of the tables a refused request must not touch, counted in one query. */
export const STORED_TABLES = [
	"users",
	"user_roles",
	"refresh_tokens",
	"api_keys",
	"bots",
	"chats",
	"chat_permissions",
	"telegram_updates",
	"messages",
	"message_edits",
	"outbound_queue",
	"events",
	"webhooks",
	"webhook_deliveries",
] as const;

export type RowCounts = Record<(typeof STORED_TABLES)[number], number>;

export async function rowCounts(db: Database): Promise<RowCounts> {
	const sql = `SELECT ${STORED_TABLES.map((t) => `(SELECT COUNT(*) FROM ${t}) AS ${t}`).join(", ")}`;
	const [row] = await db.sequelize.query<Record<string, number | string>>(sql, { type: QueryTypes.SELECT });
	return Object.fromEntries(STORED_TABLES.map((t) => [t, Number(row![t])])) as RowCounts;
}

/** Describes a request for failure messages, without megabytes of it. */
export function requestLabel(method: string, path: string, body?: string | Buffer): string {
	const text = body === undefined ? "" : Buffer.isBuffer(body) ? `<${body.length} bytes>` : body.length > 300 ? `${body.slice(0, 300)}... (${body.length} chars)` : body;
	return `${method} ${path.length > 300 ? `${path.slice(0, 300)}...` : path} ${text}`;
}

/**
 * An answer to hostile input: never a 5xx; a 4xx is the API's error shape (a known code with its
 * status, a message, no stack trace, no SQL, no secret). Returns the status.
 */
export function expectNo5xx(res: HttpResult<unknown>, request: string): number {
	if (res.status >= 500) throw new Error(`${res.status} for ${request}: ${res.text.slice(0, 500)}`);
	if (res.status >= 400) {
		const error = (res.body as { error?: { code?: unknown; message?: unknown } } | undefined)?.error;
		const code = typeof error?.code === "string" ? error.code : "";
		if (!Object.prototype.hasOwnProperty.call(ERROR_STATUS, code) || ERROR_STATUS[code as keyof typeof ERROR_STATUS] !== res.status || typeof error?.message !== "string") {
			throw new Error(`${res.status} without the API's error shape for ${request}: ${res.text.slice(0, 500)}`);
		}
		expectNoLeak(res.text, request);
	}
	return res.status;
}

/** No stack trace, SQL fragment, password hash or file path in what a client is told. */
export function expectNoLeak(text: string, request: string): void {
	if (/\n\s+at |\bat [\w.]+ \(|SELECT .* FROM|INSERT INTO|UPDATE \w+ SET|SQLITE_|\$argon2|\.ts:\d+|node_modules/.test(text)) {
		throw new Error(`internals leaked for ${request}: ${text.slice(0, 500)}`);
	}
}

/**
 * A send the gateway accepted and Telegram refused (chats.send: 400 "Telegram refused the message"):
 * the message is kept with status `failed` (its id is in the error's details), so rows do change.
 */
export function telegramRefusedSend(errorMessage: unknown): boolean {
	return typeof errorMessage === "string" && errorMessage.startsWith("Telegram refused the message");
}

/** Asserts that a refused request stored nothing. */
export function expectUnchanged(before: RowCounts, after: RowCounts, request: string): void {
	const changed = STORED_TABLES.filter((t) => before[t] !== after[t]).map((t) => `${t} ${before[t]} -> ${after[t]}`);
	if (changed.length > 0) throw new Error(`refused request stored rows (${changed.join(", ")}): ${request}`);
}

/** Object.prototype as the process started: a hostile `__proto__` key that got merged somewhere shows here. */
const PROTOTYPE_KEYS = Object.getOwnPropertyNames(Object.prototype).sort().join(",");

/** The gateway runs in this process: no input may have added anything to Object.prototype. */
export function expectNoPrototypePollution(): void {
	const now = Object.getOwnPropertyNames(Object.prototype).sort().join(",");
	if (now !== PROTOTYPE_KEYS) throw new Error(`Object.prototype was polluted: ${now}`);
}

/** /health answers and a normal authenticated request works: the gateway survived the run. */
export async function expectServing(baseUrl: string, token: string): Promise<void> {
	expectNoPrototypePollution();
	const health = await http(baseUrl, "GET", "/health");
	if (health.status !== 200) throw new Error(`/health answered ${health.status} after the run`);
	const me = await http(baseUrl, "GET", "/api/v1/auth/me", { headers: { authorization: `Bearer ${token}` } });
	if (me.status !== 200) throw new Error(`GET /auth/me answered ${me.status} after the run: ${me.text.slice(0, 200)}`);
}

/**
 * A full collection, so the heap figure is what is still referenced, not garbage not yet swept.
 * Jest's sandbox hides `--expose-gc`'s gc, so it is switched on here and taken from a fresh context.
 */
const collectGarbage: () => void = (() => {
	setFlagsFromString("--expose-gc");
	return runInNewContext("gc") as () => void;
})();

/** Heap still referenced now, after a full collection. */
export function heapUsed(): number {
	collectGarbage();
	return process.memoryUsage().heapUsed;
}

/**
 * Live heap a whole hostile-input file may leave behind (seen: 3-9 MB after a collection, for caches
 * and lazily loaded code); a per-request leak over thousands of generated requests would exceed it.
 */
export const HEAP_GROWTH_LIMIT = 48 * 1024 * 1024;

/**
 * Stops the gateway, then asserts the live heap grew less than HEAP_GROWTH_LIMIT since `heapBefore`.
 * Measured before the stop, asserted after it: a failed bound must not leave the gateway running.
 */
export async function stopWithinHeapBound(heapBefore: number, stop: () => Promise<void> | undefined): Promise<void> {
	const heapGrowth = heapUsed() - heapBefore;
	await stop();
	expect(heapGrowth).toBeLessThan(HEAP_GROWTH_LIMIT);
}
