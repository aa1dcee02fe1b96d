/**
 * fastest-validator lets `null` through every `optional` rule, whatever its type, and handlers read
 * "given" as `!== undefined`: a JSON `null` then reached the database (a NOT NULL column: 500) or a
 * function that needs a value. For the API's actions (those with a `rest` route, which gRPC calls
 * too) a top-level `null` is accepted only where the rule says `nullable: true`; anywhere else it is a
 * VALIDATION_ERROR naming the field.
 */
import type { ActionHandler, ActionSchema, Context } from "moleculer";
import { fail } from "../errors";

function allowsNull(rule: unknown): boolean {
	if (Array.isArray(rule)) return rule.some(allowsNull);
	if (typeof rule === "string") return /\bnullable\b/.test(rule);
	return typeof rule === "object" && rule !== null && (rule as { nullable?: unknown }).nullable === true;
}

export const NullParamsMiddleware = {
	name: "NullParams",
	localAction(next: ActionHandler, action: ActionSchema): ActionHandler {
		const params = action.params as Record<string, unknown> | undefined;
		if (!action.rest || !params || typeof params !== "object") return next;
		const fields = Object.keys(params).filter((name) => !name.startsWith("$$") && !allowsNull(params[name]));
		if (fields.length === 0) return next;
		// A rejected promise, not a throw: Moleculer's context tracker forgets a call only when it settles.
		return async function nullParams(ctx: Context) {
			const given = (ctx.params ?? {}) as Record<string, unknown>;
			const nulls = fields.filter((name) => given[name] === null);
			if (nulls.length > 0) throw fail.validation(nulls.map((field) => ({ field, message: `The '${field}' field must not be null.`, type: "required" })));
			return next(ctx);
		};
	},
};
