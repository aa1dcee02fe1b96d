/**
 * Whether some node of the cluster (this one included) runs an action right now, and which nodes run
 * a service, asked of the registry without calling: Moleculer logs a warning for every call to an
 * action no node runs, so code that asks often (a feed's poll, every request of a route) looks first.
 */
import type { ServiceBroker } from "moleculer";

/** The registry lookup moleculer-web makes itself; Moleculer's typings leave it out. */
interface ActionRegistry {
	getActionEndpoints(action: string): { hasAvailable(): boolean } | undefined;
}

export function isActionReachable(broker: ServiceBroker, action: string): boolean {
	return (broker.registry as unknown as ActionRegistry).getActionEndpoints(action)?.hasAvailable() ?? false;
}

/**
 * The available nodes that run `service`, sorted. A local service is listed only once it has
 * started (Moleculer registers it after its `started` handler).
 */
export function nodesRunning(broker: ServiceBroker, service: string): string[] {
	const list = broker.registry.getServiceList({ onlyAvailable: true }) as unknown as Array<{ name: string; nodeID: string }>;
	return [...new Set(list.filter((s) => s.name === service).map((s) => s.nodeID))].sort();
}
