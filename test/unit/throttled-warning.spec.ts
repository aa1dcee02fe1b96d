/** lib/throttled-warning.ts: an outage's per-request warning, at most once per interval per logger and topic. */
import { warnAtMostEvery } from "../../lib/throttled-warning";

function logger() {
	const lines: string[] = [];
	return { lines, warn: (message: unknown) => lines.push(String(message)) };
}

describe("warnAtMostEvery", () => {
	it("says the first at once, then once per interval with how often it happened since", () => {
		const log = logger();
		for (let second = 0; second < 10; second++) warnAtMostEvery(log, "redis", "Rate limiter unavailable", 10_000, second * 1_000);
		expect(log.lines).toEqual(["Rate limiter unavailable"]);
		warnAtMostEvery(log, "redis", "Rate limiter unavailable", 10_000, 10_000);
		expect(log.lines).toEqual(["Rate limiter unavailable", "Rate limiter unavailable (10 times since the last report)"]);
	});

	it("keeps topics and loggers apart", () => {
		const [a, b] = [logger(), logger()];
		warnAtMostEvery(a, "one", "first", 10_000, 0);
		warnAtMostEvery(a, "two", "second", 10_000, 1);
		warnAtMostEvery(b, "one", "third", 10_000, 2);
		warnAtMostEvery(a, "one", "first again", 10_000, 3);
		expect([a.lines, b.lines]).toEqual([["first", "second"], ["third"]]);
	});
});
