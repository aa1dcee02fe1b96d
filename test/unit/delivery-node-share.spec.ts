/**
 * A delivery node's room shared out by owner (services/delivery/node-share.ts): no owner past its
 * share, slots dealt owner by owner (not endpoint by endpoint), never more than a webhook wants.
 */
import { NODE_CONCURRENCY, OWNER_SHARE_PER_NODE, shareNodeRoom, type SlotWish } from "../../services/delivery/node-share";

const wish = (webhookId: number, owner: number, wants: number): SlotWish => ({ webhookId, owner, wants });
const total = (shares: Map<number, number>, ids: number[]) => ids.reduce((sum, id) => sum + (shares.get(id) ?? 0), 0);
const none = () => 0;

describe("shareNodeRoom", () => {
	it("one owner's many endpoints get its share of the node, not the node; the others get what they want", () => {
		// Five endpoints at the highest cap (5 x 64 > the node's 256) against one endpoint of another owner.
		const wishes = [1, 2, 3, 4, 5].map((id) => wish(id, 7, 64)).concat(wish(6, 8, 8));
		const shares = shareNodeRoom(wishes, none, NODE_CONCURRENCY);
		expect(total(shares, [1, 2, 3, 4, 5])).toBe(OWNER_SHARE_PER_NODE);
		expect(shares.get(6)).toBe(8);
		// Within the owner, its endpoints take turns.
		expect([1, 2, 3, 4, 5].map((id) => shares.get(id))).toEqual([13, 13, 13, 13, 12]);
	});

	it("counts what an owner already has in flight on the node against its share", () => {
		const shares = shareNodeRoom([wish(1, 7, 64), wish(2, 8, 64)], (owner) => (owner === 7 ? 60 : 0), NODE_CONCURRENCY);
		expect(shares.get(1)).toBe(4);
		expect(shares.get(2)).toBe(64);
		expect(shareNodeRoom([wish(1, 7, 64)], () => OWNER_SHARE_PER_NODE, NODE_CONCURRENCY).get(1)).toBeUndefined();
	});

	it("a tight node is dealt one slot per owner in turn, however many endpoints each has", () => {
		const wishes = [wish(1, 7, 64), wish(2, 7, 64), wish(3, 7, 64), wish(4, 8, 8), wish(5, 9, 1)];
		const shares = shareNodeRoom(wishes, none, 7);
		expect(total(shares, [1, 2, 3])).toBe(3);
		expect(shares.get(4)).toBe(3);
		expect(shares.get(5)).toBe(1);
		expect(total(shares, [1, 2, 3, 4, 5])).toBe(7);
	});

	it("never more than a webhook wants, nothing without room, and a smaller share when asked", () => {
		expect(shareNodeRoom([wish(1, 7, 2), wish(2, 7, 0)], none, NODE_CONCURRENCY)).toEqual(new Map([[1, 2]]));
		expect(shareNodeRoom([wish(1, 7, 2)], none, 0).size).toBe(0);
		expect(shareNodeRoom([wish(1, 7, 64), wish(2, 7, 64)], none, NODE_CONCURRENCY, 10)).toEqual(new Map([[1, 5], [2, 5]]));
	});
});
