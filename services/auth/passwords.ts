import argon2 from "argon2";
import { BoundedConcurrency } from "../../lib/async";
import { fail } from "../../lib/errors";

/** OWASP's argon2id baseline (19 MiB, 2 passes): about 20 ms here, paid at login, never per request. */
const OPTIONS = { type: argon2.argon2id, memoryCost: 19_456, timeCost: 2, parallelism: 1 } as const;

/**
 * argon2 checks on this node: 2 at once, 100 more waiting; past that a check is refused
 * RATE_LIMITED at once. Each takes a thread of libuv's pool, the pool every SQLite statement needs
 * too, and CPU: a burst (API key guesses sent all at once, which the address throttle only counts
 * as they fail; logins from many addresses) otherwise took every thread (400 guesses: 17 s of CPU,
 * and another client's GET /chats waited 3.9 s). Hashing new secrets (users, passwords, API keys:
 * authenticated work) has a bound of its own, so a flood of logins cannot refuse it.
 */
const checks = new BoundedConcurrency(2, 100);
const hashing = new BoundedConcurrency(2, 100);

function bounded<T>(slots: BoundedConcurrency, work: () => Promise<T>): Promise<T> {
	const running = slots.run(work);
	if (!running) throw fail.rateLimited(1);
	return running;
}

export async function hashSecret(secret: string): Promise<string> {
	return bounded(hashing, () => argon2.hash(secret, OPTIONS));
}

export async function verifySecret(hash: string, secret: string): Promise<boolean> {
	return bounded(checks, async () => {
		try {
			return await argon2.verify(hash, secret);
		} catch {
			return false;
		}
	});
}

/** A hash to verify against when the user does not exist, so both paths cost the same time. */
let decoy: Promise<string> | undefined;
export function decoyHash(): Promise<string> {
	// Once per process, outside the bound (a refusal kept here would fail every later login); a
	// failure is not kept either.
	decoy ??= argon2.hash("decoy-password-that-matches-nothing", OPTIONS).catch((err: unknown) => {
		decoy = undefined;
		throw err;
	});
	return decoy;
}
