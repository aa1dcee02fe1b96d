/** lib/throttled-warning.ts: an outage's per-request warning, at most once per interval per logger and topic; a lasting outage said when it begins and ends. */
import { OutageNotice, warnAtMostEvery } from "../../lib/throttled-warning";

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

describe("OutageNotice", () => {
	function twoLevelLogger() {
		const lines: string[] = [];
		return { lines, warn: (message: unknown) => lines.push(`WARN ${String(message)}`), info: (message: unknown) => lines.push(`INFO ${String(message)}`) };
	}

	it("warns when the outage begins, reminds at most every interval, and says once when it ends", () => {
		const log = twoLevelLogger();
		const notice = new OutageNotice(log, 10_000);
		notice.recovered("back"); // nothing was down: nothing to say
		for (let ms = 0; ms < 10_000; ms += 250) notice.failed("broker away", ms);
		expect(log.lines).toEqual(["WARN broker away"]);
		notice.failed("broker away", 10_000);
		notice.recovered("back");
		notice.recovered("back");
		expect(log.lines).toEqual(["WARN broker away", "WARN broker away (40 times since the last report)", "INFO back"]);
	});

	it("warns at once when a new outage begins, however soon after the last", () => {
		const log = twoLevelLogger();
		const notice = new OutageNotice(log, 10_000);
		notice.failed("away", 0);
		notice.recovered("back");
		notice.failed("away", 1_000);
		expect(log.lines).toEqual(["WARN away", "INFO back", "WARN away"]);
	});
});
