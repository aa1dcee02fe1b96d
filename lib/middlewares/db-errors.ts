/**
 * Turns database failures into the API's error codes where they happen, so every entry point
 * (REST, socket, gRPC) sees UNAVAILABLE for an outage and CONFLICT for a duplicate, never SQL.
 */
import type { ActionHandler, Context } from "moleculer";
import { GatewayError, toApiError } from "../errors";

function translate(err: unknown): unknown {
	const name = (err as { name?: string } | null)?.name ?? "";
	if (!name.startsWith("Sequelize") && name !== "DatabaseUnavailableError") return err;
	const mapped = toApiError(err);
	if (mapped.status === 500) {
		// Keep the original for the log; the client only ever sees INTERNAL.
		return err;
	}
	// An outage is this node's (its connection, its database), and a busy database (a deadlock, a lock
	// wait) passes: both retried (elsewhere), and counted by the breaker, as every 503 was before.
	return new GatewayError(mapped.body.error.code, mapped.body.error.message, undefined, { endpointFailure: mapped.status === 503 });
}

export const DbErrorsMiddleware = {
	name: "DbErrors",
	localAction(next: ActionHandler): ActionHandler {
		return async function dbErrors(ctx: Context) {
			try {
				return await next(ctx);
			} catch (err) {
				throw translate(err);
			}
		};
	},
};
