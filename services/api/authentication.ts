/**
 * The api service's authentication (a mixin of services/api.service.ts): every /api/v1 request's
 * credential becomes a principal through auth.resolve, under the bad-credential throttle of its
 * address, cached here briefly, and pays one token of the principal's rate limit.
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import type { Context, Service, ServiceSchema, ServiceSettingSchema } from "moleculer";
import { resolveThrottled } from "../../lib/credential-throttle";
import { fail } from "../../lib/errors";
import { LoadingCache } from "../../lib/loading-cache";
import type { GatewayMeta } from "../../lib/meta";
import { metricsOf } from "../../lib/metrics";
import { refuseWhenEmpty, takePrincipalToken } from "../../lib/rate-limit";
import type { Runtime } from "../../lib/runtime";
import { REVOCABLE_TTL_MS, type AuthChange } from "../auth/cache";
import type { Principal } from "../auth/principal";
import { credentialOutsideBody, takeCredential } from "./credentials";
import { clientAddress, hasBody } from "./http";

type GatewayRequest = IncomingMessage & {
	$action?: { auth?: boolean };
	$ctx?: Context<unknown, GatewayMeta>;
	$params?: Record<string, unknown>;
	query?: Record<string, unknown>;
	body?: unknown;
} & CheckedBeforeBody;

/** What checkBeforeBody found out before the body was read. */
interface CheckedBeforeBody {
	/** The header or query credential's principal: with it, the body may take the full limit (services/api/http.ts). */
	$principal?: Principal;
	/** Why that credential was refused; thrown once the route turns out not to be public. */
	$credentialRefusal?: unknown;
}

type AuthenticationThis = Service & {
	runtime: Runtime;
	/**
	 * credential -> principal for at most REVOCABLE_TTL_MS (and never past the credential's own
	 * expiry), emptied by every auth.changed: repeated requests skip the call to auth.resolve. With
	 * auth's own cache of the same length, a revocation holds here within a second even unannounced.
	 */
	principals: LoadingCache<string, Principal>;
	principalOf(ctx: Context, credential: string, address: string): Promise<Principal>;
	rateLimit(principal: Principal, res: ServerResponse): Promise<void>;
};

/** The request's Idempotency-Key header into the meta, if it has one; 400 when it is not a usable key. */
function setIdempotencyKey(meta: GatewayMeta, req: GatewayRequest): void {
	const key = req.headers["idempotency-key"];
	if (key === undefined) return;
	if (typeof key !== "string" || !/^[A-Za-z0-9._:-]{1,64}$/.test(key)) throw fail.badRequest("Idempotency-Key must be 1-64 letters, digits, '.', '_', ':' or '-'", { header: "Idempotency-Key" });
	meta.idempotencyKey = key;
}

/**
 * A route middleware of /api/v1, before its body reader: a request with a body and a credential in
 * its headers or query has that credential resolved first, so only a verified one may send a body
 * of up to the full limit. Without one (no credential, one in the body, or one refused) the body
 * reader takes at most its unverified limit: a 1 MB JSON body costs 10-50 ms to parse, and before
 * this anyone could have it parsed before being refused. A refusal is kept for authenticate(): the
 * route may be public (login), which ignores credentials.
 */
export function checkBeforeBody(this: AuthenticationThis, incoming: IncomingMessage, _res: ServerResponse, next: (err?: unknown) => void): void {
	const req = incoming as GatewayRequest;
	const credential = hasBody(req) ? credentialOutsideBody(req) : undefined;
	if (credential === undefined || !req.$ctx) return next();
	this.principalOf(req.$ctx, credential, clientAddress(req, this.runtime.config.trustProxy)).then(
		(principal) => {
			req.$principal = principal;
			next();
		},
		(err: unknown) => {
			req.$credentialRefusal = err;
			next();
		},
	);
}

export const AuthenticationMixin: Partial<ServiceSchema<ServiceSettingSchema, AuthenticationThis>> = {
	events: {
		/** A user, key or grant changed somewhere: resolve every credential afresh (an ended login: that user's). */
		"auth.changed"(this: AuthenticationThis, ctx: Context<AuthChange>) {
			const change = ctx.params;
			if (change.kind === "session") this.principals.deleteWhere((p) => p.type === "user" && p.user_id === change.user_id);
			else this.principals.clear();
		},
	},

	methods: {
		/**
		 * Every /api/v1 request: note the client, then (unless the action is public) resolve the
		 * credential through auth.resolve and charge the principal's rate limit. Permissions are
		 * checked where the action runs (lib/middlewares/authorize.ts), the same for every entry point.
		 */
		async authenticate(this: AuthenticationThis, ctx: Context<unknown, GatewayMeta>, _route: unknown, req: GatewayRequest, res: ServerResponse): Promise<null> {
			// Answers carry tokens, keys and message history, and a credential may ride in the query: no cache keeps them.
			res.setHeader("Cache-Control", "no-store");
			const address = clientAddress(req, this.runtime.config.trustProxy);
			ctx.meta.clientIp = address;
			const userAgent = req.headers["user-agent"];
			if (userAgent) ctx.meta.userAgent = userAgent.slice(0, 255);
			// Credentials are taken out of the params on every route; a public one (login) ignores a malformed header.
			const isPublic = req.$action?.auth === false;
			let credential: string | null = null;
			try {
				credential = takeCredential(req);
			} catch (err) {
				if (!isPublic) throw err;
			}
			if (isPublic) {
				setIdempotencyKey(ctx.meta, req);
				return null;
			}
			if (!credential) throw fail.unauthorized("Credentials required: Authorization: Bearer <token>, X-API-Key, ?api_key= or api_key in the body");

			try {
				if (req.$credentialRefusal !== undefined) throw req.$credentialRefusal;
				// The cached principal is taken without an await: this runs on every request.
				ctx.meta.principal = req.$principal ?? this.principals.peek(credential) ?? (await this.principalOf(ctx, credential, address));
			} catch (err) {
				if ((err as { code?: unknown }).code === 429) metricsOf(this.broker).rateLimited.inc({ limit: "auth_failures" });
				throw err;
			}
			await this.rateLimit(ctx.meta.principal, res);
			// After the credential: who sent no (or a bad) credential learns that first.
			setIdempotencyKey(ctx.meta, req);
			return null;
		},

		/** The principal of a credential: from the cache, else through auth.resolve under the address's throttle. */
		principalOf(this: AuthenticationThis, ctx: Context, credential: string, address: string): Promise<Principal> {
			const cached = this.principals.peek(credential);
			if (cached) return Promise.resolve(cached);
			// Concurrent requests with one credential share one auth.resolve; each failure still counts against its own address.
			return resolveThrottled(this.runtime.state, address, () =>
				this.principals.get(credential, () => ctx.call<Principal, { credential: string }>("auth.resolve", { credential })),
			);
		},

		/** One token bucket per principal (its rate_limit per second), shared by every api node. */
		async rateLimit(this: AuthenticationThis, principal: Principal, res: ServerResponse): Promise<void> {
			const bucket = await takePrincipalToken(this.runtime.state, this.logger, principal, "requests");
			if (!bucket) return;
			res.setHeader("X-RateLimit-Limit", String(principal.rate_limit));
			res.setHeader("X-RateLimit-Remaining", String(bucket.remaining));
			res.setHeader("X-RateLimit-Reset", String(Math.ceil(bucket.resetMs / 1000)));
			if (!bucket.allowed) metricsOf(this.broker).rateLimited.inc({ limit: "principal" });
			refuseWhenEmpty(bucket);
		},
	},

	created(this: AuthenticationThis) {
		this.principals = new LoadingCache({ max: 20_000, ttlMs: REVOCABLE_TTL_MS, ttlOf: (p) => Math.min(REVOCABLE_TTL_MS, (p.expires_at ?? Infinity) - Date.now()) });
	},
};
