/**
 * Brute-force protection for POST /auth/login, in shared state so every api node counts together.
 *
 * - At most 10 login attempts per minute from one address (any outcome).
 * - Failures are counted per username and per address over 15 minutes. From the 3rd failure on, each
 *   attempt waits 250 ms, doubling per further failure, at most 4 s, before the password is checked.
 * - 10 failures for one username, or 30 from one address, lock logins for the rest of that 15-minute
 *   window (429 with Retry-After). A locked name answers the same whether or not the user exists.
 * - An attempt counts as a failure of its username when it begins, before the password is checked,
 *   and a successful one clears them: counted only once checked, 100 guesses sent at once (from 10
 *   addresses, inside their per-minute limit) were all checked before the lock began.
 * - A successful login clears the username's failures (not the address's).
 * - An IPv6 address counts by its /64 (lib/address-group.ts).
 */
import { addressGroup } from "../../lib/address-group";
import type { SharedState } from "../../lib/state";
import { sha256 } from "./tokens";

export const LOGIN_LIMITS = {
	attemptsPerAddressPerMinute: 10,
	failureWindowMs: 15 * 60_000,
	slowDownAfterFailures: 3,
	baseDelayMs: 250,
	maxDelayMs: 4_000,
	lockAfterUsernameFailures: 10,
	lockAfterAddressFailures: 30,
} as const;

export type LoginGate = { allowed: true; delayMs: number } | { allowed: false; retryAfterMs: number; reason: "rate" | "locked" };

const userKey = (username: string) => `login:fail:user:${sha256(username.trim().toLowerCase())}`;
const addressKey = (address: string) => `login:fail:ip:${addressGroup(address)}`;

export function failureDelayMs(failures: number): number {
	if (failures < LOGIN_LIMITS.slowDownAfterFailures) return 0;
	return Math.min(LOGIN_LIMITS.maxDelayMs, LOGIN_LIMITS.baseDelayMs * 2 ** (failures - LOGIN_LIMITS.slowDownAfterFailures));
}

export async function checkLoginAllowed(state: SharedState, username: string, address: string): Promise<LoginGate> {
	const attempts = await state.hit(`login:attempts:${addressGroup(address)}`, 60_000);
	if (attempts.count > LOGIN_LIMITS.attemptsPerAddressPerMinute) {
		return { allowed: false, retryAfterMs: attempts.resetMs, reason: "rate" };
	}
	const [lockedUser, byAddress] = await Promise.all([state.peekWindow(userKey(username)), state.peekWindow(addressKey(address))]);
	if (lockedUser.count >= LOGIN_LIMITS.lockAfterUsernameFailures) return { allowed: false, retryAfterMs: lockedUser.resetMs, reason: "locked" };
	if (byAddress.count >= LOGIN_LIMITS.lockAfterAddressFailures) {
		return { allowed: false, retryAfterMs: byAddress.resetMs, reason: "locked" };
	}
	// Counted now, as a failure until it succeeds: attempts racing each other each see those before them.
	const byUser = await state.hit(userKey(username), LOGIN_LIMITS.failureWindowMs);
	if (byUser.count > LOGIN_LIMITS.lockAfterUsernameFailures) return { allowed: false, retryAfterMs: byUser.resetMs, reason: "locked" };
	return { allowed: true, delayMs: failureDelayMs(Math.max(byUser.count - 1, byAddress.count)) };
}

/** A checked attempt failed: the address's count (the username's was taken when it began). Returns the username's failures. */
export async function recordLoginFailure(state: SharedState, username: string, address: string): Promise<number> {
	const [byUser] = await Promise.all([state.peekWindow(userKey(username)), state.hit(addressKey(address), LOGIN_LIMITS.failureWindowMs)]);
	return byUser.count;
}

export async function recordLoginSuccess(state: SharedState, username: string): Promise<void> {
	await state.del(userKey(username));
}
