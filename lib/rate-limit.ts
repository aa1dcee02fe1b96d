/**
 * The per-principal token bucket that every entry point charges (REST requests, gRPC calls and
 * streams, socket and WebSocket frames): one bucket per principal in the shared state, so every
 * node and channel draws on the same limit. While the state is away the entry points serve rather
 * than refuse everyone (/ready reports the outage), and say so at most every 10 s.
 */
import type { LoggerInstance } from "moleculer";
import { principalKey, type Principal } from "../services/auth/principal";
import { fail } from "./errors";
import type { BucketResult, SharedState } from "./state";
import { warnAtMostEvery } from "./throttled-warning";

/** One token from the principal's bucket; null when the shared state cannot be reached. */
export async function takePrincipalToken(
	state: Pick<SharedState, "takeToken">,
	logger: Pick<LoggerInstance, "warn">,
	principal: Principal,
	allowedWhileAway: string,
): Promise<BucketResult | null> {
	try {
		return await state.takeToken(`rl:${principalKey(principal)}`, principal.rate_limit, principal.rate_limit);
	} catch (err) {
		warnAtMostEvery(logger, "rate limiter", `Rate limiter unavailable, ${allowedWhileAway} allowed: ${(err as Error).message}`);
		return null;
	}
}

/** 429 RATE_LIMITED with the seconds until a token is back, when the bucket had none. */
export function refuseWhenEmpty(bucket: BucketResult): void {
	if (!bucket.allowed) throw fail.rateLimited(Math.max(1, Math.ceil(bucket.retryAfterMs / 1000)));
}
