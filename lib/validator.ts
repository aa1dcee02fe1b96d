/**
 * Moleculer's fastest-validator, made safe for values no check expects. With `convert: true`,
 * fastest-validator turns what a client sent into a number, string or date (Number(), String(),
 * new Date()); a plain JSON object such as {"toString": false} cannot be turned into anything, and
 * the TypeError escaped the check synchronously: a 500, a call the context tracker never forgot,
 * and a failure counted by the action's circuit breaker. Here it fails the check, naming the field.
 */
import { Validators } from "moleculer";
import { isSecretName, REDACTED } from "./tracing";

/**
 * A database id in a path, query or body: a positive integer JavaScript holds exactly (past 2^53
 * ids round to their neighbours), from a number or a numeric string (path and query values are strings).
 */
export const ID = { type: "number", integer: true, positive: true, max: Number.MAX_SAFE_INTEGER, convert: true } as const;

type Check = ((params: unknown, opts?: unknown) => true | unknown[] | Promise<true | unknown[]>) & { async?: boolean };

/** True when JavaScript cannot turn the value into a primitive (what Number() and String() do first). */
function unconvertible(value: unknown): boolean {
	if (value === null || typeof value !== "object") return false;
	try {
		String(value);
		Number(value);
		return false;
	} catch {
		return true;
	}
}

/** The fields holding a value no conversion can read, as validation problems ("" for the whole request). */
export function unreadable(params: unknown): Array<{ type: string; field: string; message: string }> {
	const values = params && typeof params === "object" ? Object.entries(params as Record<string, unknown>) : [];
	const fields = values.filter(([, value]) => unconvertible(value)).map(([field]) => field);
	return (fields.length > 0 ? fields : [""]).map((field) => ({
		type: "unreadable",
		field,
		message: field ? `The '${field}' field holds an object where a plain value belongs.` : "The request holds an object where a plain value belongs.",
	}));
}

interface Rule {
	type?: unknown;
	convert?: unknown;
	max?: unknown;
}

/** The schema's top-level fields (not its `$$` options) with their rules written as objects. */
function topLevelRules(schema: object): Array<[string, Rule]> {
	return Object.entries(schema).filter((entry): entry is [string, Rule] => !entry[0].startsWith("$$") && entry[1] !== null && typeof entry[1] === "object");
}

/**
 * Top-level fields whose rule converts to `type`. Number() takes more than numbers and decimal
 * strings: [5] is 5, true is 1, "" is 0, "0x10" is 16, "1e3" is 1000 (/chats/0x10 read chat 16); new
 * Date() takes "1", "2026", "December 7, 2026" and moves 2026-02-30 to March 2nd. Values not in the
 * API's form are refused before the check, naming the field.
 */
function convertedFields(schema: object, type: "number" | "date"): string[] {
	return topLevelRules(schema)
		.filter(([, rule]) => rule.type === type && rule.convert === true)
		.map(([field]) => field);
}

/** An ISO 8601 date, or a date and time with its offset (Z or ±hh:mm): the form API.md's times take. */
export const ISO_TIME = /^(\d{4})-(\d{2})-(\d{2})(?:T([01]\d|2[0-3]):[0-5]\d(?::[0-5]\d(?:\.\d{1,9})?)?(?:Z|[+-](?:[01]\d|2[0-3]):[0-5]\d))?$/;

/** An ISO 8601 time of a day that exists. */
function isIsoTime(value: string): boolean {
	const match = ISO_TIME.exec(value);
	if (!match) return false;
	const [year, month, day] = [Number(match[1]), Number(match[2]), Number(match[3])];
	const date = new Date(0);
	date.setUTCFullYear(year, month - 1, day);
	return date.getUTCFullYear() === year && date.getUTCMonth() === month - 1 && date.getUTCDate() === day;
}

/** A number as a path, query or form value writes it: plain decimal digits. */
const DECIMAL = /^-?\d{1,300}(\.\d{1,300})?$/;

/** What each converted type takes; a Date comes from the gateway's own callers (the REPL). */
const ACCEPTED: Record<"number" | "date", (value: unknown) => boolean> = {
	number: (value) => typeof value === "number" || (typeof value === "string" && DECIMAL.test(value)),
	date: (value) => value instanceof Date || (typeof value === "string" && isIsoTime(value)),
};

const REFUSAL: Record<"number" | "date", (field: string, value: unknown) => unknown> = {
	number: (field, value) => ({ type: "number", field, actual: typeof value, message: `The '${field}' field must be a number.` }),
	date: (field) => ({ type: "date", field, message: `The '${field}' field must be an ISO 8601 time, such as 2026-12-07T16:00:00Z.` }),
};

function notConvertible(params: unknown, fields: string[], type: "number" | "date"): unknown[] {
	if (fields.length === 0 || params === null || typeof params !== "object") return [];
	const values = params as Record<string, unknown>;
	// Missing and null are the rule's to judge (optional, nullable).
	return fields
		.filter((field) => values[field] !== undefined && values[field] !== null && !ACCEPTED[type](values[field]))
		.map((field) => REFUSAL[type](field, values[field]));
}

/**
 * Top-level array fields and their `max`. fastest-validator checks every item (and, with `unique`,
 * looks for duplicates with indexOf per item: quadratic) even when the array is already too long:
 * 140,000 chat ids in a 1 MB body held the event loop for 8 s. Past its max an array is refused
 * before the check, naming the field.
 */
function cappedArrays(schema: object): Array<[string, number]> {
	return topLevelRules(schema)
		.filter(([, rule]) => rule.type === "array" && typeof rule.max === "number")
		.map(([field, rule]) => [field, rule.max as number]);
}

function overlong(params: unknown, arrays: Array<[string, number]>): unknown[] {
	if (arrays.length === 0 || params === null || typeof params !== "object") return [];
	const values = params as Record<string, unknown>;
	return arrays
		.filter(([field, max]) => Array.isArray(values[field]) && (values[field] as unknown[]).length > max)
		.map(([field, max]) => ({
			type: "arrayMax",
			field,
			expected: max,
			actual: (values[field] as unknown[]).length,
			message: `The '${field}' field must contain less than or equal to ${max} items.`,
		}));
}

/** Half of a surrogate pair (half an emoji): no character, and stored as U+FFFD while sent on as given. */
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

/**
 * Top-level strings that are not valid Unicode: a text with a lone surrogate went to Telegram as
 * given while the database kept U+FFFD, so the answer, the message sent and history disagreed.
 */
function malformedText(params: unknown): unknown[] {
	if (params === null || typeof params !== "object") return [];
	return Object.entries(params as Record<string, unknown>)
		.filter(([, value]) => typeof value === "string" && LONE_SURROGATE.test(value))
		.map(([field]) => ({ type: "string", field, message: `The '${field}' field is not valid Unicode: it holds half of a surrogate pair (half an emoji).` }));
}

/**
 * A refused check carries the value it refused (`actual`), and Moleculer logs the whole error at
 * debug: a bot token pasted with its "bot" prefix from a Bot API URL went to the log. A secret-named
 * field's value is kept out.
 */
function withoutSecretValues(result: true | unknown[]): true | unknown[] {
	if (result === true) return result;
	return result.map((error) => {
		const { field, actual } = (error ?? {}) as { field?: unknown; actual?: unknown };
		const name = typeof field === "string" ? (field.split(/[.[\]]/).filter(Boolean).pop() ?? "") : "";
		return actual !== undefined && isSecretName(name) ? { ...(error as object), actual: REDACTED } : error;
	});
}

export class GatewayValidator extends (Validators.Fastest as unknown as new (options?: object) => { compile(schema: object): Check }) {
	override compile(schema: object): Check {
		const numbers = convertedFields(schema, "number");
		const dates = convertedFields(schema, "date");
		const arrays = cappedArrays(schema);
		const fastest = super.compile(schema);
		const check: Check = (params, opts) => {
			const refused = [...notConvertible(params, numbers, "number"), ...notConvertible(params, dates, "date"), ...overlong(params, arrays), ...malformedText(params)];
			if (refused.length === 0) return fastest(params, opts);
			return fastest.async ? Promise.resolve(refused) : refused;
		};
		if (fastest.async) check.async = true;
		const refuse = (err: unknown, params: unknown) => {
			if (err instanceof TypeError) return unreadable(params);
			throw err;
		};
		const safe: Check = (params, opts) => {
			try {
				const result = check(params, opts);
				return result instanceof Promise ? result.then(withoutSecretValues, (err: unknown) => refuse(err, params)) : withoutSecretValues(result);
			} catch (err) {
				return refuse(err, params);
			}
		};
		if (check.async) safe.async = true;
		return safe;
	}
}
