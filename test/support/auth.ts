/**
 * Helpers for the identity-and-access integration tests: a gateway with a known first admin, tokens
 * minted through the `auth.login` action (each call from its own address, so the per-address login
 * throttle of 127.0.0.1 is left to the tests that exercise it), users, API keys, and the error shape.
 */
import type { ServiceBroker } from "moleculer";
import type { Principal } from "../../services/auth/principal";
import { http, startTestGateway, type HttpResult, type TestGateway, type TestGatewayOptions } from "./harness";

export const ADMIN_PASSWORD = "admin-password-for-tests";

export type Json = Record<string, unknown>;
export type Res = HttpResult<Json>;

export interface LoginResult {
	access_token: string;
	refresh_token: string;
	token_type: string;
	expires_in: number;
	user: { id: number; username: string; roles: string[] };
}

export interface TestUser {
	id: number;
	username: string;
	password: string;
	token: string;
}

export interface CreatedKey {
	id: number;
	key: string;
	user_id: number;
	[field: string]: unknown;
}

/** A gateway running api + auth (one node unless told otherwise) whose first admin is admin/ADMIN_PASSWORD. */
export function startAuthGateway(options: TestGatewayOptions = {}): Promise<TestGateway> {
	return startTestGateway({
		nodes: [["api", "auth"]],
		...options,
		env: { ADMIN_PASSWORD, ...options.env },
	});
}

let addressCounter = 0;

/** A fresh private address per call: logins through the action never share a throttle bucket. */
export function nextAddress(): string {
	addressCounter += 1;
	return `10.${100 + (Math.floor(addressCounter / 65536) % 100)}.${Math.floor(addressCounter / 256) % 256}.${addressCounter % 256}`;
}

/** Logs in through the `auth.login` action (what POST /auth/login calls), from a fresh address. */
export function loginAction(broker: ServiceBroker, username: string, password: string, clientIp = nextAddress()): Promise<LoginResult> {
	return broker.call<LoginResult, { username: string; password: string }>("auth.login", { username, password }, { meta: { clientIp } });
}

export async function adminToken(gw: TestGateway): Promise<string> {
	return (await loginAction(gw.broker, "admin", ADMIN_PASSWORD)).access_token;
}

export function bearer(credential: string): Record<string, string> {
	return { authorization: `Bearer ${credential}` };
}

/** A REST call under /api/v1 with a credential in the Authorization header (or none). */
export function api(baseUrl: string, method: string, path: string, credential?: string | null, body?: unknown): Promise<Res> {
	return http<Json>(baseUrl, method, `/api/v1${path}`, {
		...(credential ? { headers: bearer(credential) } : {}),
		...(body !== undefined ? { body } : {}),
	});
}

let userCounter = 0;

/** Creates a user through POST /users (as the admin) and logs it in through the action. */
export async function createUser(gw: TestGateway, admin: string, roles: string[] = ["viewer"], username?: string): Promise<TestUser> {
	userCounter += 1;
	const name = username ?? `${roles[0] ?? "user"}-${userCounter}-${Date.now().toString(36)}`;
	const password = `password-${userCounter}-long-enough`;
	const res = await api(gw.baseUrl, "POST", "/users", admin, { username: name, password, roles });
	if (res.status !== 201) throw new Error(`POST /users answered ${res.status}: ${res.text}`);
	const login = await loginAction(gw.broker, name, password);
	return { id: Number(res.body.id), username: name, password, token: login.access_token };
}

/** Creates an API key through POST /apikeys with the given credential; fails the test unless 201. */
export async function createKey(baseUrl: string, credential: string, body: Json = {}): Promise<CreatedKey> {
	const res = await api(baseUrl, "POST", "/apikeys", credential, { name: `key-${Date.now()}`, ...body });
	if (res.status !== 201) throw new Error(`POST /apikeys answered ${res.status}: ${res.text}`);
	return res.body as unknown as CreatedKey;
}

/** GET /auth/me with a credential in the Authorization header. */
export function me(baseUrl: string, credential: string): Promise<Res> {
	return api(baseUrl, "GET", "/auth/me", credential);
}

/** The principal behind a credential, as every entry point resolves it. */
export function resolvePrincipal(broker: ServiceBroker, credential: string): Promise<Principal> {
	return broker.call<Principal, { credential: string }>("auth.resolve", { credential });
}

interface ErrorBody {
	error: { code: string; message: string; details?: Json & { fields?: Array<{ field: string; message: string }> } };
}

/**
 * Asserts the status and API.md's error shape: exactly `{"error": {"code", "message", "details"?}}`,
 * a non-empty message, and no stack trace or SQL in the text.
 */
export function expectApiError(res: HttpResult<unknown>, status: number, code: string): ErrorBody["error"] {
	expect({ status: res.status, code: (res.body as ErrorBody | undefined)?.error?.code }).toEqual({ status, code });
	const body = res.body as ErrorBody;
	expect(Object.keys(body)).toEqual(["error"]);
	expect(Object.keys(body.error).filter((k) => !["code", "message", "details"].includes(k))).toEqual([]);
	expect(typeof body.error.message).toBe("string");
	expect(body.error.message.length).toBeGreaterThan(0);
	if (body.error.details !== undefined) expect(typeof body.error.details).toBe("object");
	expect(res.text).not.toMatch(/\n\s+at |SELECT |INSERT |UPDATE |\$argon2/);
	expect(res.headers.get("content-type")).toMatch(/application\/json/);
	return body.error;
}

/** The field names a VALIDATION_ERROR's details name. */
export function errorFields(res: HttpResult<unknown>): string[] {
	const fields = (res.body as ErrorBody).error.details?.fields ?? [];
	return fields.map((f) => f.field);
}

/** Polls `probe` every `everyMs` until it returns true; resolves with the time it took, or null. */
export async function pollUntil(probe: () => Promise<boolean>, withinMs: number, everyMs = 50): Promise<number | null> {
	const started = Date.now();
	for (;;) {
		if (await probe()) return Date.now() - started;
		if (Date.now() - started > withinMs) return null;
		await new Promise((resolve) => setTimeout(resolve, everyMs));
	}
}

export function sleep(ms: number): Promise<void> {
	return new Promise((resolve) => setTimeout(resolve, ms));
}

/**
 * Nodes started together on the Fake transporter find each other by heartbeat, a second or so after
 * they started (the harness only waits until each node sees the services locally). Waits until every
 * node sees `services` on every node, so cross-node broadcasts reach them.
 */
export async function waitForPeers(gw: TestGateway, services: string[] = ["api", "auth"], timeoutMs = 10_000): Promise<void> {
	const ids = gw.nodes.map((n) => n.broker.nodeID);
	const seen = await pollUntil(
		async () =>
			gw.nodes.every((node) => {
				const list = node.broker.registry.getServiceList({ onlyAvailable: true }) as unknown as Array<{ name: string; nodeID: string }>;
				return ids.every((id) => services.every((name) => list.some((s) => s.name === name && s.nodeID === id)));
			}),
		timeoutMs,
	);
	if (seen === null) throw new Error(`the nodes did not find each other within ${timeoutMs} ms`);
}
