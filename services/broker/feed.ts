/**
 * The event log as a live feed on one node: events in seq order, none missing, none twice.
 *
 * Producers broadcast each committed batch (gateway.events); batches from different producers can
 * arrive out of order, and a broadcast can be lost. Because seqs become visible in commit order
 * (see event-log.ts), a gap below a seq this node has seen is always readable from the log: the
 * feed holds later events back, reads the gap from the log, and delivers in order. A periodic look
 * at the log's head catches the tail when the last broadcast of a quiet period was lost. For the
 * same reason a seq the log lacks below one it has shown (or below its committed head) never comes:
 * a hole (the counter raised by `migrate seq --above` on a running cluster, say) is stepped over,
 * not waited for.
 */
import type { GatewayEvent } from "./event-log";

export interface FeedSource {
	/** Events with afterSeq < seq <= untilSeq (or to the head), in seq order, at most `limit`. */
	range(afterSeq: number, untilSeq: number | undefined, limit: number): Promise<GatewayEvent[]>;
	head(): Promise<number>;
}

export interface FeedOptions {
	/** How long a gap may stay open before it is read from the log. */
	gapWaitMs?: number;
	/** How often the log's head is checked for events no broadcast brought. */
	headCheckMs?: number;
	onError?(err: unknown): void;
}

const PAGE = 500;
/** Held-back events beyond this mean the node is far behind: it catches up from the log instead. */
const MAX_PENDING = 20_000;

export class EventFeed {
	/** The next seq to deliver. */
	private next = 0;
	private readonly pending = new Map<number, GatewayEvent>();
	private gapTimer?: NodeJS.Timeout;
	private headTimer?: NodeJS.Timeout;
	private filling = false;
	private started = false;
	private readonly startWaiters = new Set<() => void>();

	constructor(
		private readonly source: FeedSource,
		private readonly deliver: (events: GatewayEvent[]) => void,
		private readonly options: FeedOptions = {},
	) {}

	/** Starts at the log's head: events committed from now on are delivered. */
	async start(): Promise<void> {
		this.next = (await this.source.head()) + 1;
		this.started = true;
		for (const wake of this.startWaiters) wake();
		this.startWaiters.clear();
		this.headTimer = setInterval(() => void this.checkHead(), this.options.headCheckMs ?? 1_000);
		this.headTimer.unref();
	}

	/**
	 * Resolves true once the feed is live (at once if it is), false after `timeoutMs`: a subscriber
	 * that took its position before then would miss what the feed skips when it joins at the head.
	 */
	whenStarted(timeoutMs: number): Promise<boolean> {
		if (this.started) return Promise.resolve(true);
		return new Promise((resolve) => {
			const wake = () => {
				clearTimeout(timer);
				resolve(true);
			};
			const timer = setTimeout(() => {
				this.startWaiters.delete(wake);
				resolve(false);
			}, timeoutMs);
			this.startWaiters.add(wake);
		});
	}

	stop(): void {
		this.started = false;
		clearInterval(this.headTimer);
		clearTimeout(this.gapTimer);
		this.pending.clear();
	}

	/** The highest seq delivered so far. */
	get position(): number {
		return this.next - 1;
	}

	/** A broadcast batch arrived. */
	receive(events: GatewayEvent[]): void {
		if (!this.started) return;
		for (const event of events) {
			if (event.seq >= this.next && this.pending.size < MAX_PENDING) this.pending.set(event.seq, event);
		}
		this.drain();
	}

	private drain(): void {
		const ready: GatewayEvent[] = [];
		for (let event = this.pending.get(this.next); event; event = this.pending.get(this.next)) {
			this.pending.delete(this.next);
			ready.push(event);
			this.next += 1;
		}
		if (ready.length > 0) this.deliver(ready);
		if (this.pending.size > 0 && !this.gapTimer) {
			this.gapTimer = setTimeout(() => {
				this.gapTimer = undefined;
				// The gap may have closed by itself meanwhile (a late broadcast): then nothing to read.
				if (this.pending.size > 0) void this.fill(Math.min(...this.pending.keys()) - 1);
			}, this.options.gapWaitMs ?? 100);
			this.gapTimer.unref();
		}
	}

	/**
	 * Reads the log from `next` up to `until` (a committed seq, or one below a committed seq) and
	 * delivers it with whatever was held back.
	 */
	private async fill(until: number): Promise<void> {
		if (this.filling || !this.started) return;
		this.filling = true;
		try {
			while (this.next <= until) {
				const events = await this.source.range(this.next - 1, until, PAGE);
				for (const event of events) if (event.seq >= this.next) this.pending.set(event.seq, event);
				const complete = events.length < PAGE;
				// The log has shown everything up to here: what it lacks there is a hole, never filled.
				this.deliverThrough(complete ? until : events[events.length - 1]!.seq);
				this.drain();
				if (complete) break;
			}
		} catch (err) {
			this.options.onError?.(err);
		} finally {
			this.filling = false;
		}
		if (this.pending.size > 0) this.drain();
	}

	/** Delivers what is held back up to `seq` in order, and goes on after it (over any hole). */
	private deliverThrough(seq: number): void {
		if (seq < this.next) return;
		const ready = [...this.pending.keys()].filter((held) => held <= seq).sort((a, b) => a - b);
		const events = ready.map((held) => {
			const event = this.pending.get(held)!;
			this.pending.delete(held);
			return event;
		});
		this.next = seq + 1;
		if (events.length > 0) this.deliver(events);
	}

	private async checkHead(): Promise<void> {
		if (this.filling || !this.started) return;
		try {
			const head = await this.source.head();
			if (head >= this.next) await this.fill(head);
		} catch (err) {
			this.options.onError?.(err);
		}
	}
}
