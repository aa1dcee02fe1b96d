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
		// 1 is still due: it goes to the back of the turn.
		expect(ids(h)).toEqual([3, 1]);
		h.settle(h.ripe(500), []);
		expect(ids(h)).toEqual([]);
		expect(h.size).toBe(0);
	});

	it("webhooks that stay due take their turn: a newly hinted one is asked about within a few rounds, however many are stuck", () => {
		clock = 3_500_000;
		const h = hints();
		h.hint(Array.from({ length: 600 }, (_, i) => i + 1));
		const stuck = (ripe: ReturnType<DueHints["ripe"]>) => ripe.map((r) => r.id).filter((id) => id <= 600);
		const first = h.ripe(500);
		h.settle(first, stuck(first));
		h.hint([9_999]);
		const seen: number[] = [];
		for (let round = 0; round < 3 && !seen.includes(9_999); round++) {
			const ripe = h.ripe(500);
			seen.push(...ripe.map((r) => r.id));
			h.settle(ripe, stuck(ripe));
		}
		expect(seen).toContain(9_999);
	});

	it("a full scan asked for while one runs is made again once it ends", () => {
		clock = 3_700_000;
		const h = hints();
		h.fullScanStarted();
		h.scanAll();
		h.fullScanDone();
		expect(h.fullScanDue).toBe(true);
		h.fullScanStarted();
		h.fullScanDone();
		expect(h.fullScanDue).toBe(false);
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
