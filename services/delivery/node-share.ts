/**
 * A delivery node's attempts in flight, shared out between webhook owners. Each endpoint's own cap
 * (max_concurrency, up to 64) bounds one endpoint, not one tenant: a tenant with a few slow
 * endpoints would otherwise hold every slot of the node and make everyone else's deliveries wait.
 * So one owning user has at most OWNER_SHARE_PER_NODE attempts in flight on a node, and the room a
 * round has is handed out one slot at a time to each owner in turn (within an owner, to each of
 * its webhooks in turn): an owner with many busy webhooks gets no more of a full node than an owner
 * with one.
 */
import type { OwningUser } from "./webhook-quota";

/** Attempts in flight at once on one node, across every endpoint. */
export const NODE_CONCURRENCY = 256;
/** Attempts of one owning user's webhooks in flight at once on one node. */
export const OWNER_SHARE_PER_NODE = 64;

export interface SlotWish {
	webhookId: number;
	owner: OwningUser;
	/** The most it could use now (its cap less what it has on the wire here; 1 for a probe). */
	wants: number;
}

/**
 * How many deliveries each webhook may claim this round: at most `room` in all, each owner within
 * `perOwner` less what it has in flight here, slots dealt round-robin by owner in the order the
 * wishes come (the caller varies it from round to round), and never more than a webhook wants.
 */
export function shareNodeRoom(wishes: SlotWish[], inFlightOf: (owner: OwningUser) => number, room: number, perOwner = OWNER_SHARE_PER_NODE): Map<number, number> {
	const byOwner = new Map<OwningUser, { left: number; wishes: Array<{ webhookId: number; wants: number }>; next: number }>();
	for (const wish of wishes) {
		if (wish.wants <= 0) continue;
		let owner = byOwner.get(wish.owner);
		if (!owner) {
			owner = { left: Math.max(0, perOwner - inFlightOf(wish.owner)), wishes: [], next: 0 };
			byOwner.set(wish.owner, owner);
		}
		owner.wishes.push({ webhookId: wish.webhookId, wants: wish.wants });
	}
	const shares = new Map<number, number>();
	let left = room;
	let dealt = true;
	while (left > 0 && dealt) {
		dealt = false;
		for (const owner of byOwner.values()) {
			if (left <= 0) break;
			if (owner.left <= 0) continue;
			// This owner's next webhook that still wants a slot, in turn; none left: the owner is done.
			let found = false;
			for (let tried = 0; tried < owner.wishes.length && !found; tried++) {
				const wish = owner.wishes[owner.next]!;
				owner.next = (owner.next + 1) % owner.wishes.length;
				const share = shares.get(wish.webhookId) ?? 0;
				if (share >= wish.wants) continue;
				shares.set(wish.webhookId, share + 1);
				owner.left -= 1;
				left -= 1;
				dealt = true;
				found = true;
			}
			if (!found) owner.left = 0;
		}
	}
	return shares;
}
