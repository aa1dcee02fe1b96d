/**
 * When to try a delivery again: about 1 s, 10 s, 1 min, 5 min and 30 min after the first, second
 * ... fifth failure (±20 % jitter, so a failed batch does not come back all at once), or later if
 * the receiver's Retry-After says so (at most an hour); after the fifth retry the delivery is dead.
 */
export const RETRY_DELAYS_MS = [1_000, 10_000, 60_000, 300_000, 1_800_000] as const;
export const MAX_ATTEMPTS = RETRY_DELAYS_MS.length + 1;
const MAX_RETRY_AFTER_MS = 3_600_000;

/** Retry-After as seconds or an HTTP date; null when absent or unreadable. */
export function parseRetryAfter(value: string | string[] | undefined, now = Date.now()): number | null {
	const text = Array.isArray(value) ? value[0] : value;
	if (!text) return null;
	if (/^\d+$/.test(text.trim())) return Math.min(Number(text.trim()) * 1000, MAX_RETRY_AFTER_MS);
	// An HTTP-date names its day and month; without letters V8 would read "-5" or "1.5" as a year.
	const at = /[A-Za-z]/.test(text) ? Date.parse(text) : Number.NaN;
	return Number.isNaN(at) ? null : Math.min(Math.max(0, at - now), MAX_RETRY_AFTER_MS);
}

/** Milliseconds until the next attempt after `attempts` failed ones, or null when it is dead. */
export function nextDelayMs(attempts: number, retryAfterMs: number | null, random: () => number = Math.random): number | null {
	if (attempts >= MAX_ATTEMPTS) return null;
	const base = RETRY_DELAYS_MS[Math.max(0, attempts - 1)]!;
	const jittered = Math.round(base * (0.8 + 0.4 * random()));
	return retryAfterMs !== null ? Math.max(jittered, retryAfterMs) : jittered;
}
