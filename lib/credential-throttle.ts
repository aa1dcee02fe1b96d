/**
 * The bad-credential throttle of every entry point (REST, gRPC, the socket.io handshake, the
 * WebSocket upgrade): an address whose credentials auth refused AUTH_FAILURES_PER_MINUTE times in a
 * minute is refused RATE_LIMITED without a check until that window ends, so guessing keys costs the
 * same wherever it is tried. One counter per address (`authfail:<address>`; an IPv6 address by its
 * /64) shared by all of them. Only credentials that do not verify count: an expired or revoked one,
 * or one whose user is disabled, was given to its holder (a client still polling with last hour's
 * token is no guesser) and must not lock out everyone else behind the same address.
 */
import { addressGroup } from "./address-group";
import { CREDENTIAL_ENDED_REASONS, fail } from "./errors";
import type { SharedState } from "./state";

/** Failed credentials from one address per minute before it is refused without checking. */
export const AUTH_FAILURES_PER_MINUTE = 60;
const WINDOW_MS = 60_000;

export type FailureCounter = Pick<SharedState, "hit" | "peekWindow">;

/** A 401 other than fail.credentialEnded's (whose `reason` survives a hop over the transporter as `data`). */
function isGuess(err: unknown): boolean {
	const { code, data } = (err ?? {}) as { code?: unknown; data?: { reason?: unknown } };
	return code === 401 && !(typeof data?.reason === "string" && CREDENTIAL_ENDED_REASONS.has(data.reason));
}

/**
 * Resolves a credential for a client at `address` through `resolve`, unless that address is over
 * the throttle (RATE_LIMITED with retry_after). A refusal by auth (401) of a credential that did not
 * verify counts against the address; any other failure (auth away, a credential that ended) does
 * not. A store that is away lets the check happen, as the rate limiter serves when it is away.
 */
export async function resolveThrottled<T>(state: FailureCounter, address: string, resolve: () => Promise<T>): Promise<T> {
	const key = `authfail:${addressGroup(address)}`;
	const failures = await state.peekWindow(key).catch(() => null);
	if (failures && failures.count >= AUTH_FAILURES_PER_MINUTE) throw fail.rateLimited(Math.max(1, Math.ceil(failures.resetMs / 1000)));
	try {
		return await resolve();
	} catch (err) {
		if (isGuess(err)) await state.hit(key, WINDOW_MS).catch(() => undefined);
		throw err;
	}
}
