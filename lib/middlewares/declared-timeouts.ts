/**
 * An action's own `timeout` wins over the default of the route that called it. moleculer-web gives
 * every call of a route its callOptions.timeout, and Moleculer prefers a caller's timeout to the
 * action's: registering a bot (30 s), a webhook test (20 s) or a replay (60 s) were cut at the REST
 * route's 15 s while they still ran. A call whose timeout is only a default says so
 * (`defaultTimeout: true` beside it); then an action that declares its own gets that one.
 */
import type { ServiceBroker } from "moleculer";

export interface DefaultTimeoutOptions {
	timeout?: number;
	/** The timeout is the caller's default for any action, not a limit it chose for this one. */
	defaultTimeout?: boolean;
}

/** The timeout the action declares, from an endpoint (moleculer-web passes one) or the registry. */
function declaredTimeout(broker: ServiceBroker, action: unknown): number | undefined {
	const fromEndpoint = (action as { action?: { timeout?: unknown } } | null)?.action?.timeout;
	if (typeof fromEndpoint === "number") return fromEndpoint;
	if (typeof action !== "string") return undefined;
	const list = (broker.registry as unknown as { actions: { get(name: string): { endpoints: Array<{ action?: { timeout?: unknown } }> } | undefined } }).actions.get(action);
	const timeout = list?.endpoints[0]?.action?.timeout;
	return typeof timeout === "number" ? timeout : undefined;
}

type Call = (action: unknown, params?: unknown, opts?: DefaultTimeoutOptions) => Promise<unknown>;

export const DeclaredTimeoutsMiddleware = {
	name: "DeclaredTimeouts",
	// Moleculer wraps broker.call with `this` the broker.
	call(this: ServiceBroker, next: Call): Call {
		return (action, params, opts) => {
			if (opts?.defaultTimeout && opts.timeout !== undefined) {
				const declared = declaredTimeout(this, action);
				if (declared !== undefined) opts = { ...opts, timeout: declared };
			}
			return next(action, params, opts);
		};
	},
};
