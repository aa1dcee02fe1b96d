/**
 * EventFeed over an in-memory log: in seq order whatever order the broadcasts come in, gaps filled
 * from the log after gapWaitMs, never a seq twice (duplicate broadcasts, a fill racing a late
 * broadcast), the tail caught from head() when the last broadcast is lost, nothing from before
 * start(), holes in the seqs (a raised counter) stepped over, and recovery after the log failed to
 * answer.
 */
import type { GatewayEvent } from "../../services/broker/event-log";
import { EventFeed, type FeedOptions, type FeedSource } from "../../services/broker/feed";
import { pause, waitUntil } from "../support/realtime-clients";

const event = (seq: number): GatewayEvent => ({ type: "new_message", seq, bot_id: 1, chat_id: 1, created_at: new Date(0).toISOString() });

/** An in-memory event log with a head, counting the calls; `hold` delays range answers until released. */
class MemoryLog implements FeedSource {
	readonly events: GatewayEvent[] = [];
	/** The last seq handed out (above the last event's after raise()). */
	private counter = 0;
	readonly rangeCalls: Array<[number, number | undefined, number]> = [];
	headCalls = 0;
	failRange = 0;
	failHead = 0;
	private gate: Promise<void> | null = null;
	private open: (() => void) | null = null;

	append(count: number): GatewayEvent[] {
		const added = Array.from({ length: count }, (_, i) => event(this.counter + i + 1));
		this.counter += count;
		this.events.push(...added);
		return added;
	}

	/** Seqs from now on come after `floor` (`npm run migrate -- seq --above`). */
	raise(floor: number): void {
		this.counter = Math.max(this.counter, floor);
	}

	seqs(...seqs: number[]): GatewayEvent[] {
		return seqs.map((seq) => this.events.find((e) => e.seq === seq)!);
	}

	hold(): void {
		this.gate = new Promise((resolve) => (this.open = resolve));
	}

	release(): void {
		this.open?.();
		this.gate = null;
	}

	async range(afterSeq: number, untilSeq: number | undefined, limit: number): Promise<GatewayEvent[]> {
		this.rangeCalls.push([afterSeq, untilSeq, limit]);
		if (this.gate) await this.gate;
		if (this.failRange > 0) {
			this.failRange -= 1;
			throw new Error("the log is away");
		}
		return this.events.filter((e) => e.seq > afterSeq && (untilSeq === undefined || e.seq <= untilSeq)).slice(0, limit);
	}

	async head(): Promise<number> {
		this.headCalls += 1;
		if (this.failHead > 0) {
			this.failHead -= 1;
			throw new Error("the log is away");
		}
		return this.counter;
	}
}

describe("EventFeed", () => {
	let log: MemoryLog;
	let batches: number[][];
	let errors: unknown[];
	let feed: EventFeed;
	const delivered = () => batches.flat();

	function makeFeed(options: FeedOptions = {}): EventFeed {
		feed = new EventFeed(log, (events) => batches.push(events.map((e) => e.seq)), {
			gapWaitMs: 30,
			headCheckMs: 60_000,
			onError: (err) => errors.push(err),
			...options,
		});
		return feed;
	}

	beforeEach(() => {
		log = new MemoryLog();
		batches = [];
		errors = [];
	});
	afterEach(() => feed?.stop());

	it("starts at the log's head and delivers in seq order when batches arrive out of order", async () => {
		log.append(2);
		await makeFeed({ gapWaitMs: 500 }).start();
		expect(feed.position).toBe(2);
		log.append(6);
		feed.receive(log.seqs(5, 6));
		feed.receive(log.seqs(7, 8));
		expect(delivered()).toEqual([]);
		feed.receive(log.seqs(3));
		expect(delivered()).toEqual([3]);
		feed.receive(log.seqs(4));
		expect(batches).toEqual([[3], [4, 5, 6, 7, 8]]);
		expect(feed.position).toBe(8);
	});

	it("does not read the log for a gap that closed before gapWaitMs", async () => {
		await makeFeed({ gapWaitMs: 30 }).start();
		log.append(3);
		feed.receive(log.seqs(2, 3));
		feed.receive(log.seqs(1)); // the gap closed in time: nothing to fill
		await pause(100);
		expect(delivered()).toEqual([1, 2, 3]);
		// Product bug: the gap timer outlives the gap and asks for range(3, Math.min() - 1 = Infinity).
		expect(log.rangeCalls).toEqual([]);
		expect(errors).toEqual([]);
	});

	it("fills a gap from the log after gapWaitMs when a broadcast is lost, then goes on live", async () => {
		await makeFeed({ gapWaitMs: 50 }).start();
		log.append(5);
		feed.receive(log.seqs(1));
		feed.receive(log.seqs(4, 5)); // 2 and 3 were lost
		await pause(20);
		expect(delivered()).toEqual([1]);
		await waitUntil(() => delivered().length === 5, 2_000, "the gap to be filled");
		expect(delivered()).toEqual([1, 2, 3, 4, 5]);
		expect(log.rangeCalls).toEqual([[1, 3, expect.any(Number)]]);
		log.append(1);
		feed.receive(log.seqs(6));
		expect(delivered()).toEqual([1, 2, 3, 4, 5, 6]);
	});

	it("fills a gap longer than one page of the log", async () => {
		await makeFeed({ gapWaitMs: 10 }).start();
		log.append(1_300);
		feed.receive(log.seqs(1, 1_300));
		await waitUntil(() => delivered().length === 1_300, 5_000, "1,300 events");
		expect(delivered()).toEqual(log.events.map((e) => e.seq));
	});

	it("never delivers a seq twice when broadcasts repeat events", async () => {
		await makeFeed().start();
		log.append(4);
		feed.receive(log.seqs(1, 2));
		feed.receive(log.seqs(2, 3));
		feed.receive(log.seqs(1, 3, 2));
		feed.receive(log.seqs(4, 4));
		feed.receive(log.seqs(3, 4));
		await pause(80);
		expect(batches).toEqual([[1, 2], [3], [4]]);
	});

	it("never delivers a seq twice when a late broadcast arrives while its gap is being read from the log", async () => {
		await makeFeed({ gapWaitMs: 10 }).start();
		log.append(4);
		feed.receive(log.seqs(1, 4));
		log.hold();
		await waitUntil(() => log.rangeCalls.length === 1, 2_000, "the fill to start");
		feed.receive(log.seqs(2, 3)); // the late broadcast wins the race
		expect(delivered()).toEqual([1, 2, 3, 4]);
		log.release();
		await pause(60);
		expect(delivered()).toEqual([1, 2, 3, 4]);
	});

	it("never delivers a seq twice when a late broadcast arrives after the fill delivered its events", async () => {
		await makeFeed({ gapWaitMs: 10 }).start();
		log.append(4);
		feed.receive(log.seqs(1, 4));
		await waitUntil(() => delivered().length === 4, 2_000, "the gap to be filled");
		feed.receive(log.seqs(2, 3));
		log.append(1);
		feed.receive(log.seqs(3, 5));
		expect(delivered()).toEqual([1, 2, 3, 4, 5]);
	});

	it("catches up from head() when the last broadcast of a quiet period is lost", async () => {
		await makeFeed({ headCheckMs: 25 }).start();
		log.append(3);
		feed.receive(log.seqs(1)); // 2 and 3 were committed, their broadcast lost, and nothing follows
		await waitUntil(() => delivered().length === 3, 2_000, "the tail to be caught from the head");
		expect(delivered()).toEqual([1, 2, 3]);
		expect(feed.position).toBe(3);
		await pause(100);
		expect(delivered()).toEqual([1, 2, 3]);
	});

	it("steps over a hole in the seqs (the counter raised while it runs): what follows is delivered, not held back for ever", async () => {
		await makeFeed({ gapWaitMs: 20 }).start();
		log.append(2);
		feed.receive(log.seqs(1, 2));
		log.raise(2_000);
		log.append(3);
		feed.receive(log.seqs(2_001, 2_002));
		await waitUntil(() => delivered().length === 4, 2_000, "the events after the hole");
		feed.receive(log.seqs(2_003));
		expect(delivered()).toEqual([1, 2, 2_001, 2_002, 2_003]);
		expect(feed.position).toBe(2_003);
	});

	it("steps over a hole found by the head check, and over holes inside a page read from the log", async () => {
		await makeFeed({ headCheckMs: 25, gapWaitMs: 20 }).start();
		log.append(1);
		log.raise(50);
		log.append(1);
		log.raise(10_000_000_000);
		// Nothing broadcast: the head check finds 10,000,000,000 and reads 1 and 51 from the log.
		await waitUntil(() => feed.position === 10_000_000_000, 2_000, "the head to be reached");
		expect(delivered()).toEqual([1, 51]);
		log.append(1);
		feed.receive(log.seqs(10_000_000_001));
		expect(delivered()).toEqual([1, 51, 10_000_000_001]);
	});

	it("ignores events received before start(), and events at or below the head it started at", async () => {
		makeFeed({ headCheckMs: 25 });
		log.append(3);
		feed.receive(log.seqs(1, 2, 3));
		expect(delivered()).toEqual([]);
		await feed.start();
		expect(feed.position).toBe(3);
		feed.receive(log.seqs(2, 3));
		log.append(1);
		feed.receive(log.seqs(4));
		await pause(100);
		expect(delivered()).toEqual([4]);
	});

	it("recovers after the log fails to answer a gap fill: onError is told, the fill is tried again", async () => {
		await makeFeed({ gapWaitMs: 20 }).start();
		log.append(3);
		log.failRange = 2;
		feed.receive(log.seqs(1, 3));
		await waitUntil(() => delivered().length === 3, 2_000, "the gap to be filled after the errors");
		expect(delivered()).toEqual([1, 2, 3]);
		expect(errors).toHaveLength(2);
		expect((errors[0] as Error).message).toBe("the log is away");
	});

	it("recovers after head() fails: onError is told, the next check catches up", async () => {
		await makeFeed({ headCheckMs: 20 }).start();
		log.append(2);
		log.failHead = 2;
		await waitUntil(() => delivered().length === 2, 2_000, "the tail after head() failed twice");
		expect(delivered()).toEqual([1, 2]);
		expect(errors.length).toBeGreaterThanOrEqual(2);
	});

	it("stop() ends the head checks and gap fills", async () => {
		await makeFeed({ headCheckMs: 20, gapWaitMs: 10 }).start();
		log.append(3);
		feed.receive(log.seqs(1, 3));
		feed.stop();
		const heads = log.headCalls;
		await pause(80);
		expect(delivered()).toEqual([1]);
		expect(log.headCalls).toBe(heads);
		expect(log.rangeCalls).toEqual([]);
	});

	it("whenStarted() answers true once the feed has joined the log, false when it did not in time", async () => {
		makeFeed();
		expect(await feed.whenStarted(20)).toBe(false);
		const waiting = feed.whenStarted(5_000);
		await feed.start();
		expect(await waiting).toBe(true);
		expect(await feed.whenStarted(0)).toBe(true);
	});
});
