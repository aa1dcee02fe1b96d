/**
 * Whether some node of the cluster (this one included) runs an action right now, asked of the
 * registry without calling: Moleculer logs a warning for every call to an action no node runs, so
 * code that asks often (a feed's poll, every request of a route) looks first.
 */
import type { ServiceBroker } from "moleculer";

/** The registry lookup moleculer-web makes itself; Moleculer's typings leave it out. */
interface ActionRegistry {
	getActionEndpoints(action: string): { hasAvailable(): boolean } | undefined;
}

export function isActionReachable(broker: ServiceBroker, action: string): boolean {
	return (broker.registry as unknown as ActionRegistry).getActionEndpoints(action)?.hasAvailable() ?? false;
}
