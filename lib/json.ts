/**
 * Parsed JSON from outside (request bodies, Telegram's getUpdates answers) made safe to merge into
 * objects, by one rule wherever it comes from.
 */

const PROTOTYPE_KEYS = ["__proto__", "constructor", "prototype"];

/** Deeper than any body this API or Telegram sends, far shallower than what breaks JSON.stringify. */
export const MAX_JSON_DEPTH = 64;

/**
 * One pass over a parsed body, without recursion (a hostile body cannot exhaust the stack here):
 * false when it nests deeper than `limit`; otherwise it drops every `__proto__`, `constructor` and
 * `prototype` key (JSON.parse keeps them as plain properties, but merging the body into an action's
 * params would turn `__proto__` into a prototype). Cheaper than a JSON.parse reviver.
 */
export function sanitizeJson(value: unknown, limit: number): boolean {
	const stack: Array<{ value: unknown; depth: number }> = [{ value, depth: 1 }];
	while (stack.length > 0) {
		const { value: current, depth } = stack.pop()!;
		if (current === null || typeof current !== "object") continue;
		if (depth > limit) return false;
		if (!Array.isArray(current)) {
			for (const key of PROTOTYPE_KEYS) if (Object.prototype.hasOwnProperty.call(current, key)) delete (current as Record<string, unknown>)[key];
		}
		for (const child of Object.values(current as Record<string, unknown>)) {
			if (child !== null && typeof child === "object") stack.push({ value: child, depth: depth + 1 });
		}
	}
	return true;
}
