/**
 * What entry points put in ctx.meta for the actions they call. The REST gateway, the socket
 * handlers and the gRPC bridge all set `principal` (and the client's address) the same way.
 */
import type { Context } from "moleculer";
import type { Principal } from "../services/auth/principal";
import { fail } from "./errors";

export interface GatewayMeta {
	principal?: Principal;
	clientIp?: string;
	userAgent?: string;
	/** The Idempotency-Key header of a POST: a retried request returns what the first one created. */
	idempotencyKey?: string;
	/** moleculer-web: response status and headers set by an action. */
	$statusCode?: number;
	$responseHeaders?: Record<string, string>;
	/** moleculer-web: the Location header of a 201. */
	$location?: string;
}

export type GatewayContext<P = unknown> = Context<P, GatewayMeta>;

/** The caller's principal; actions behind a permission always have one (the middleware checked). */
export function principalOf(ctx: Context<unknown, GatewayMeta>): Principal {
	const principal = ctx.meta.principal;
	if (!principal) throw fail.unauthorized();
	return principal;
}

/** REST status for a successful answer other than 200 (202 Accepted, 204 No Content). */
export function respondWith(ctx: Context<unknown, GatewayMeta>, status: 202 | 204): void {
	ctx.meta.$statusCode = status;
}

/** 201 Created, with the Location of what was created (a path under /api/v1). */
export function respondCreated(ctx: Context<unknown, GatewayMeta>, path: string): void {
	ctx.meta.$statusCode = 201;
	ctx.meta.$location = `/api/v1${path}`;
}
