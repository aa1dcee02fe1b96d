/**
 * A node that dies and comes back under the same NODE_ID within the heartbeat timeout (a process
 * manager restarting it, a pod's container restarting) is never seen as disconnected: Moleculer
 * only notes its new instance. Calls that were in flight to the dead process would then wait for
 * their whole timeout (15 s for Telegram's pushes). They can never be answered, so they are
 * rejected as soon as the new instance announces itself, as a disconnect would have done; the
 * callers retry or answer 503 at once.
 */
import type { ServiceBroker } from "moleculer";

interface NodeEvent {
	node: { id: string; instanceID: string | null; local?: boolean };
}

type WithInternals = ServiceBroker & {
	localBus: { on(event: string, listener: (payload: NodeEvent) => void): void };
	transit?: { removePendingRequestByNodeID(nodeID: string): void };
};

export const RestartedNodesMiddleware = {
	name: "RestartedNodes",
	created(broker: ServiceBroker) {
		const internals = broker as WithInternals;
		const instances = new Map<string, string | null>();
		const seen = ({ node }: NodeEvent) => {
			if (node.local) return;
			const previous = instances.get(node.id);
			instances.set(node.id, node.instanceID);
			if (previous && node.instanceID && previous !== node.instanceID) {
				broker.getLogger("registry").warn(`Node '${node.id}' restarted: its calls in flight are rejected`);
				internals.transit?.removePendingRequestByNodeID(node.id);
			}
		};
		internals.localBus.on("$node.connected", seen);
		internals.localBus.on("$node.updated", seen);
	},
};
