import { jitteredPollSeconds } from "../../services/ingest/poller";

describe("jitteredPollSeconds", () => {
	it("spreads a long poll's timeout ±20% around the configured one, in whole seconds, never under 1", () => {
		expect(jitteredPollSeconds(25, () => 0)).toBe(20);
		expect(jitteredPollSeconds(25, () => 0.5)).toBe(25);
		expect(jitteredPollSeconds(25, () => 0.999)).toBe(30);
		expect(jitteredPollSeconds(1, () => 0)).toBe(1);
		const seen = new Set(Array.from({ length: 500 }, () => jitteredPollSeconds(25)));
		expect(Math.min(...seen)).toBeGreaterThanOrEqual(20);
		expect(Math.max(...seen)).toBeLessThanOrEqual(30);
		expect(seen.size).toBeGreaterThan(5);
	});
});
