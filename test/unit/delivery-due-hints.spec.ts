/** What a delivery node's work rounds ask about between full scans (services/delivery/due-hints.ts). */
import { DueHints } from "../../services/delivery/due-hints";

describe("DueHints", () => {
	let clock = 1_000_000;
	const hints = () => new DueHints(5_000, () => clock);
	const ids = (h: DueHints, limit = 500) => h.ripe(limit).map((r) => r.id);

	it("a full scan is due at once, then every 5 s after the last one went round; scanAll() asks for one now", () => {
		clock = 1_000_000;
		const h = hints();
		expect(h.fullScanDue).toBe(true);
		h.fullScanDone();
		expect(h.fullScanDue).toBe(false);
		clock += 4_999;
		expect(h.fullScanDue).toBe(false);
		clock += 1;
		expect(h.fullScanDue).toBe(true);
		h.fullScanDone();
		h.scanAll();
		expect(h.fullScanDue).toBe(true);
	});

	it("hinted webhooks are ripe now, longest waiting first, up to the limit; a re-hint keeps its place", () => {
		clock = 2_000_000;
		const h = hints();
		h.hint([3]);
		clock += 10;
		h.hint([1, 2]);
		clock += 10;
		h.hint([3]);
		expect(ids(h)).toEqual([3, 1, 2]);
		expect(ids(h, 2)).toEqual([3, 1]);
	});

	it("a check forgets those with nothing due and keeps those that had, unless hinted again meanwhile", () => {
		clock = 3_000_000;
		const h = hints();
		h.hint([1, 2, 3]);
		const checked = h.ripe(500);
		// While the check ran, webhook 3 got new deliveries.
		h.hint([3]);
		h.settle(checked, [1]);
		expect(ids(h)).toEqual([1, 3]);
		h.settle(h.ripe(500), []);
		expect(ids(h)).toEqual([]);
		expect(h.size).toBe(0);
	});

	it("a retry scheduled for later ripens at its time, each one, even when the webhook was checked and forgotten before", () => {
		clock = 4_000_000;
		const h = hints();
		h.hint([7], clock + 1_000);
		h.hint([7], clock + 3_000);
		h.hint([7]);
		h.settle(h.ripe(500), []);
		expect(ids(h)).toEqual([]);
		expect(h.size).toBe(1);
		clock += 1_000;
		expect(ids(h)).toEqual([7]);
		h.settle(h.ripe(500), []);
		clock += 1_999;
		expect(ids(h)).toEqual([]);
		clock += 1;
		expect(ids(h)).toEqual([7]);
		h.settle(h.ripe(500), []);
		expect(h.size).toBe(0);
	});
});
