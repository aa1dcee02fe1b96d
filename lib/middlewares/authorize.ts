/**
 * Every action that declares `permission: "resource:action"` refuses callers whose principal lacks
 * it. It runs where the action runs, so REST, socket.io, WebSocket and gRPC get the same check.
 * Internal callers with no principal (REPL, CLI, jobs) must pass SYSTEM_PRINCIPAL explicitly.
 */
import type { ActionHandler, ActionSchema, Context } from "moleculer";
import { fail } from "../errors";
import type { GatewayMeta } from "../meta";
import { hasPermission } from "../../services/auth/principal";

export const AuthorizeMiddleware = {
	name: "Authorize",
	localAction(next: ActionHandler, action: ActionSchema): ActionHandler {
		const permission = action.permission as string | undefined;
		if (!permission) return next;
		// Refusals must be rejected promises, not throws: Moleculer's context tracker only forgets a
		// call when its promise settles, and a synchronous throw would leave it counted forever.
		return async function authorize(ctx: Context<unknown, GatewayMeta>) {
			const principal = ctx.meta.principal;
			if (!principal) throw fail.unauthorized();
			if (!hasPermission(principal, permission)) {
				// "Scopes" only when they are what leaves it out: a key of a user whose role lost it is refused for the role.
				throw fail.forbidden(
					principal.type === "api_key" && principal.scopes && !principal.scopes.includes(permission)
						? `This API key's scopes do not include ${permission}`
						: `Missing permission ${permission}`,
				);
			}
			return next(ctx);
		};
	},
};
