/**
 * Where a REST request may carry its credential (API.md): `Authorization: Bearer <JWT or key>`,
 * `X-API-Key`, `?api_key=` / `?token=`, or `api_key` in a JSON or form body. Whatever carried it is
 * removed from the action's params, so no action ever sees (or logs, or stores) a credential.
 */
import type { IncomingMessage } from "node:http";
import { bearerToken } from "../../lib/bearer";
import { fail } from "../../lib/errors";

/** The query names that carry a credential, never a parameter (POST /bots has a body `token` of its own). */
export const CREDENTIAL_QUERY_NAMES: ReadonlySet<string> = new Set(["api_key", "token"]);

type RequestWithParams = IncomingMessage & {
	query?: Record<string, unknown>;
	body?: unknown;
	$params?: Record<string, unknown>;
};

function firstString(value: unknown): string | undefined {
	if (typeof value === "string") return value;
	if (Array.isArray(value) && typeof value[0] === "string") return value[0];
	return undefined;
}

/** A credential's value, or undefined when the place is empty: an empty value hides nothing (as on the WebSocket and gRPC). */
function given(value: unknown): string | undefined {
	const text = firstString(value)?.trim();
	return text ? text : undefined;
}

/**
 * The credential a request carries in its headers or query, the forms that win over a body's
 * `api_key` (takeCredential's order): readable, and so checkable, before the body is read.
 */
export function credentialOutsideBody(req: Pick<RequestWithParams, "headers" | "query">): string | undefined {
	const bearer = bearerToken(req.headers.authorization);
	if (bearer !== undefined) return bearer;
	const query = req.query ?? {};
	return given(req.headers["x-api-key"]) ?? given(query.api_key) ?? given(query.token);
}

/** Finds the credential and takes it out of the params; null when the request carries none. */
export function takeCredential(req: RequestWithParams): string | null {
	const params = req.$params ?? {};
	const query = req.query ?? {};
	const body = (req.body && typeof req.body === "object" ? req.body : {}) as Record<string, unknown>;

	// Query values were merged over the body: drop them, and give a body field of the same name back
	// (POST /bots has a `token` of its own, the bot's).
	for (const name of CREDENTIAL_QUERY_NAMES) {
		if (name in query) {
			if (name in body && name !== "api_key") params[name] = body[name];
			else delete params[name];
		}
	}
	if ("api_key" in body) delete params.api_key;

	const outside = credentialOutsideBody(req);
	if (outside !== undefined) return outside;
	const fromBody = given(body.api_key);
	if (fromBody !== undefined) return fromBody;
	// Another scheme and nothing else: say what is expected rather than "credentials required".
	if (req.headers.authorization !== undefined) throw fail.unauthorized("Authorization header must be 'Bearer <token>'");
	return null;
}
