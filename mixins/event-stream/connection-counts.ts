/**
 * Live connections per principal on one node, shared by every service that streams events there
 * (realtime's sockets and WebSockets, grpc's streams), for LIVE_CONNECTIONS_PER_PRINCIPAL.
 */
import type { ServiceBroker } from "moleculer";
import { principalKey, type Principal } from "../../services/auth/principal";

export class ConnectionCounts {
	private readonly perPrincipal = new Map<string, number>();
	private readonly holders = new Map<string, string>();

	of(principal: Principal): number {
		return this.perPrincipal.get(principalKey(principal)) ?? 0;
	}

	add(connectionId: string, principal: Principal): void {
		if (this.holders.has(connectionId)) return;
		const key = principalKey(principal);
		this.holders.set(connectionId, key);
		this.perPrincipal.set(key, (this.perPrincipal.get(key) ?? 0) + 1);
	}

	remove(connectionId: string): void {
		const key = this.holders.get(connectionId);
		if (key === undefined) return;
		this.holders.delete(connectionId);
		const left = (this.perPrincipal.get(key) ?? 1) - 1;
		if (left > 0) this.perPrincipal.set(key, left);
		else this.perPrincipal.delete(key);
	}
}

const byBroker = new WeakMap<ServiceBroker, ConnectionCounts>();

/** The node's counts (one per broker). */
export function connectionCountsOf(broker: ServiceBroker): ConnectionCounts {
	let counts = byBroker.get(broker);
	if (!counts) {
		counts = new ConnectionCounts();
		byBroker.set(broker, counts);
	}
	return counts;
}
