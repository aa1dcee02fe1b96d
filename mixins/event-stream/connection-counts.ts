/**
 * Live connections per principal and per user on one node, shared by every service that streams
 * events there (realtime's sockets and WebSockets, grpc's streams), for LIVE_CONNECTIONS_PER_PRINCIPAL
 * and LIVE_CONNECTIONS_PER_USER (a user's own logins and its API keys together: each key has the
 * per-principal allowance, and a user may own many keys), and all of them for LIVE_CONNECTIONS_PER_NODE.
 */
import type { ServiceBroker } from "moleculer";
import { tally } from "../../lib/tally";
import { principalKey, type Principal } from "../../services/auth/principal";

export class ConnectionCounts {
	private readonly perPrincipal = new Map<string, number>();
	private readonly perUser = new Map<string, number>();
	private readonly holders = new Map<string, { principal: string; user: string }>();

	/** Every live connection on the node. */
	get total(): number {
		return this.holders.size;
	}

	of(principal: Principal): number {
		return this.perPrincipal.get(principalKey(principal)) ?? 0;
	}

	ofUser(principal: Pick<Principal, "user_id">): number {
		return this.perUser.get(String(principal.user_id)) ?? 0;
	}

	add(connectionId: string, principal: Principal): void {
		if (this.holders.has(connectionId)) return;
		const keys = { principal: principalKey(principal), user: String(principal.user_id) };
		this.holders.set(connectionId, keys);
		tally(this.perPrincipal, keys.principal, 1);
		tally(this.perUser, keys.user, 1);
	}

	remove(connectionId: string): void {
		const keys = this.holders.get(connectionId);
		if (keys === undefined) return;
		this.holders.delete(connectionId);
		tally(this.perPrincipal, keys.principal, -1);
		tally(this.perUser, keys.user, -1);
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
