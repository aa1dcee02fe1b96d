/**
 * Parsed JSON from outside (request bodies, Telegram's getUpdates answers) made safe to merge into
 * objects, by one rule wherever it comes from.
 */

const PROTOTYPE_KEYS = new Set(["__proto__", "constructor", "prototype"]);

/** Deeper than any body this API or Telegram sends, far shallower than what breaks JSON.stringify. */
export const MAX_JSON_DEPTH = 64;

/**
 * One pass over a parsed body, without recursion (a hostile body cannot exhaust the stack here):
 * false when it nests deeper than `limit`; otherwise it drops every `__proto__`, `constructor` and
 * `prototype` key (JSON.parse keeps them as plain properties, but merging the body into an action's
 * params would turn `__proto__` into a prototype). Cheaper than a JSON.parse reviver.
 */
export function sanitizeJson(value: unknown, limit: number): boolean {
	// Two parallel stacks, not one of {value, depth} objects, and arrays walked by index: a 1 MB body
	// of half a million small values is walked without an allocation per value.
	const values: unknown[] = [value];
	const depths: number[] = [1];
	while (values.length > 0) {
		const current = values.pop();
		const depth = depths.pop()!;
		if (current === null || typeof current !== "object") continue;
		if (depth > limit) return false;
		if (Array.isArray(current)) {
			for (let i = 0; i < current.length; i++) {
				const child: unknown = current[i];
				if (child !== null && typeof child === "object") {
					values.push(child);
					depths.push(depth + 1);
				}
			}
			continue;
		}
		const object = current as Record<string, unknown>;
		for (const key of Object.keys(object)) {
			if (PROTOTYPE_KEYS.has(key)) {
				delete object[key];
				continue;
			}
			const child = object[key];
			if (child !== null && typeof child === "object") {
				values.push(child);
				depths.push(depth + 1);
			}
		}
	}
	return true;
}
