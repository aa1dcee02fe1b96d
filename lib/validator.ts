/**
 * Moleculer's fastest-validator, made safe for values no check expects. With `convert: true`,
 * fastest-validator turns what a client sent into a number, string or date (Number(), String(),
 * new Date()); a plain JSON object such as {"toString": false} cannot be turned into anything, and
 * the TypeError escaped the check synchronously: a 500, a call the context tracker never forgot,
 * and a failure counted by the action's circuit breaker. Here it fails the check, naming the field.
 */
import { Validators } from "moleculer";

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

function unreadable(params: unknown): unknown[] {
	const values = params && typeof params === "object" ? Object.entries(params as Record<string, unknown>) : [];
	const fields = values.filter(([, value]) => unconvertible(value)).map(([field]) => field);
	return (fields.length > 0 ? fields : [""]).map((field) => ({
		type: "unreadable",
		field,
		message: field ? `The '${field}' field holds an object where a plain value belongs.` : "The request holds an object where a plain value belongs.",
	}));
}

export class GatewayValidator extends (Validators.Fastest as unknown as new (options?: object) => { compile(schema: object): Check }) {
	override compile(schema: object): Check {
		const check = super.compile(schema);
		const refuse = (err: unknown, params: unknown) => {
			if (err instanceof TypeError) return unreadable(params);
			throw err;
		};
		const safe: Check = (params, opts) => {
			try {
				const result = check(params, opts);
				return result instanceof Promise ? result.catch((err: unknown) => refuse(err, params)) : result;
			} catch (err) {
				return refuse(err, params);
			}
		};
		if (check.async) safe.async = true;
		return safe;
	}
}
