/**
 * Who is calling, for every RPC: the credential from the metadata (`authorization: Bearer <JWT or
 * API key>`, or `x-api-key`), resolved by auth.resolve before the request message is read
 * (credentialsFirst), then one token from the principal's rate limit bucket, the same bucket REST
 * charges. Failed credentials count against the caller's address in the throttle every entry point
 * shares (lib/credential-throttle.ts).
 */
import type { IncomingMessage } from "node:http";
import { ServerInterceptingCall, type Metadata, type ServerInterceptor } from "@grpc/grpc-js";
import type { LoggerInstance } from "moleculer";
import { resolveThrottled } from "../../lib/credential-throttle";
import { fail } from "../../lib/errors";
import type { SharedState } from "../../lib/state";
import { clientAddress } from "../api/http";
import type { Principal } from "../auth/principal";
import { refuseWhenEmpty, takePrincipalToken } from "../../lib/rate-limit";
import { bearerToken } from "../../lib/bearer";
import { logFailure } from "./calls";
import { toGrpcError } from "./errors";

export { AUTH_FAILURES_PER_MINUTE } from "../../lib/credential-throttle";

function firstText(metadata: Metadata, key: string): string | undefined {
	const value = metadata.get(key)[0];
	return typeof value === "string" ? value : undefined;
}

/** The credential the metadata carries; null when none. A malformed `authorization` is refused. */
export function credentialFrom(metadata: Metadata): string | null {
	const header = firstText(metadata, "authorization");
	const bearer = bearerToken(header);
	if (bearer !== undefined) return bearer;
	const apiKey = firstText(metadata, "x-api-key")?.trim();
	if (apiKey) return apiKey;
	// Another scheme and nothing else: say what is expected rather than "credentials required".
	if (header !== undefined) throw fail.unauthorized("The authorization metadata must be 'Bearer <token>'");
	return null;
}

/** The client's address: the peer, or (behind a TRUST_PROXY) the x-forwarded-for metadata, as REST. */
export function clientAddressOf(peer: string, metadata: Metadata, trustedProxies: string[]): string {
	// grpc-js gives "host:port" ("::1:5000" for IPv6, without brackets).
	const host = peer.replace(/:\d+$/, "").replace(/^\[(.*)\]$/, "$1");
	const forwarded = metadata.get("x-forwarded-for").filter((v): v is string => typeof v === "string");
	const request = { socket: { remoteAddress: host }, headers: forwarded.length > 0 ? { "x-forwarded-for": forwarded.join(",") } : {} };
	return clientAddress(request as unknown as IncomingMessage, trustedProxies);
}

export interface Caller {
	principal: Principal;
	credential: string;
	clientIp: string;
}

export interface AuthDeps {
	resolveCredential(credential: string): Promise<Principal>;
	state: Pick<SharedState, "takeToken" | "hit" | "peekWindow">;
	trustedProxies: string[];
	logger: Pick<LoggerInstance, "warn">;
}

/** Principals found by credentialsFirst, for the handler's authenticate() of the same call. */
const resolvedFirst = new WeakMap<Metadata, Principal>();

/** The metadata's credential (refused when missing) and how to resolve it, under the address's throttle. */
function callerOf(deps: Pick<AuthDeps, "resolveCredential" | "state" | "trustedProxies">, metadata: Metadata, peer: string) {
	const clientIp = clientAddressOf(peer, metadata, deps.trustedProxies);
	const credential = credentialFrom(metadata);
	if (!credential) throw fail.unauthorized("Credentials required: authorization: Bearer <token> or x-api-key metadata");
	return { clientIp, credential, resolve: () => resolveThrottled(deps.state, clientIp, () => deps.resolveCredential(credential)) };
}

export async function authenticate(deps: AuthDeps, metadata: Metadata, peer: string): Promise<Caller> {
	const { clientIp, credential, resolve } = callerOf(deps, metadata, peer);
	// Resolved (and charged) by credentialsFirst before the request message came.
	const first = resolvedFirst.get(metadata);
	if (first) return { principal: first, credential, clientIp };
	const principal = await resolve();
	await chargeRateLimit(deps, principal);
	return { principal, credential, clientIp };
}

/**
 * A server interceptor for the RPCs `needsCredentials` names (health and reflection stay open):
 * the metadata's credential is resolved before grpc-js reads the request message, so a caller
 * without a valid one is refused (the status authenticate() would give) before up to 1 MB of
 * protobuf is read and decoded for it (3-8 ms a message). The principal goes on to the handler's
 * authenticate() with the metadata, so it is resolved once.
 */
export function credentialsFirst(deps: Omit<AuthDeps, "logger"> & { logger: Pick<LoggerInstance, "warn" | "error"> }, needsCredentials: (path: string) => boolean): ServerInterceptor {
	return (method, call) => {
		if (!needsCredentials(method.path)) return new ServerInterceptingCall(call);
		return new ServerInterceptingCall(call, {
			start: (next) =>
				next({
					onReceiveMetadata: (metadata, passOn) => {
						// Charged here, with the headers: a call waiting for its request message (call-bounds.ts
						// gives it 10 s) has taken its token, so one credential holds no more than its rate allows.
						const admit = async () => {
							const principal = await callerOf(deps, metadata, call.getPeer()).resolve();
							await chargeRateLimit(deps, principal);
							return principal;
						};
						admit().then(
							(principal) => {
								resolvedFirst.set(metadata, principal);
								passOn(metadata);
							},
							(err: unknown) => {
								logFailure(deps.logger, method.path, err);
								call.sendStatus(toGrpcError(err));
							},
						);
					},
				}),
		});
	};
}

/** One token per call (per stream opened) from the principal's bucket; a store that is away allows. */
export async function chargeRateLimit(deps: Pick<AuthDeps, "state" | "logger">, principal: Principal): Promise<void> {
	const bucket = await takePrincipalToken(deps.state, deps.logger, principal, "gRPC calls");
	if (bucket) refuseWhenEmpty(bucket);
}
