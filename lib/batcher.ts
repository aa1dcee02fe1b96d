/**
 * Items that arrive while earlier batches are in flight wait for the next batch, which takes all of
 * them (up to maxBatch). At low load each item goes at once on its own; under load hundreds share a
 * batch. Ingest uses it as a group commit (one transaction per batch, what lets SQLite keep up), the
 * api node to send Telegram pushes to ingest in one call per batch. A batch that fails for a reason
 * other than isUnavailable is retried one item at a time, so one bad item cannot fail its neighbours.
 */
export interface BatcherOptions<I, O> {
	write(items: I[]): Promise<O[]>;
	maxBatch: number;
	/** Batches in flight at once. */
	concurrency: number;
	/** With weight: a batch stops growing before its items weigh more than this (one item always goes). */
	maxWeight?: number;
	weight?(item: I): number;
	/** Errors that say the store is away: every item fails at once, no one-by-one retry. */
	isUnavailable(err: unknown): boolean;
	/**
	 * Waiting items (not yet in a batch) at most, by count and, with weight, by weight: past either,
	 * submit() is refused with full()'s error at once, so a store that falls behind cannot make the
	 * queue grow without bound.
	 */
	maxQueued?: { items: number; weight?: number; full(): Error };
}

interface Pending<I, O> {
	item: I;
	weight: number;
	resolve(value: O): void;
	reject(err: unknown): void;
}

export class Batcher<I, O> {
	private queue: Array<Pending<I, O>> = [];
	private running = 0;
	private queuedWeight = 0;

	constructor(private readonly options: BatcherOptions<I, O>) {}

	get depth(): number {
		return this.queue.length;
	}

	submit(item: I): Promise<O> {
		const { maxQueued, weight } = this.options;
		const itemWeight = weight ? weight(item) : 0;
		if (maxQueued && (this.queue.length >= maxQueued.items || (maxQueued.weight !== undefined && this.queue.length > 0 && this.queuedWeight + itemWeight > maxQueued.weight))) {
			return Promise.reject(maxQueued.full());
		}
		return new Promise<O>((resolve, reject) => {
			this.queue.push({ item, weight: itemWeight, resolve, reject });
			this.queuedWeight += itemWeight;
			this.pump();
		});
	}

	private pump(): void {
		while (this.running < this.options.concurrency && this.queue.length > 0) {
			const batch = this.queue.splice(0, this.batchLength());
			for (const p of batch) this.queuedWeight -= p.weight;
			this.running += 1;
			void this.flush(batch).finally(() => {
				this.running -= 1;
				this.pump();
			});
		}
	}

	/** How many queued items the next batch takes: up to maxBatch, and within maxWeight. */
	private batchLength(): number {
		const { maxBatch, maxWeight } = this.options;
		const limit = Math.min(maxBatch, this.queue.length);
		if (maxWeight === undefined) return limit;
		let total = this.queue[0]!.weight;
		let length = 1;
		for (; length < limit; length++) {
			const next = this.queue[length]!.weight;
			if (total + next > maxWeight) break;
			total += next;
		}
		return length;
	}

	private async flush(batch: Array<Pending<I, O>>): Promise<void> {
		try {
			const results = await this.options.write(batch.map((p) => p.item));
			batch.forEach((p, i) => p.resolve(results[i]!));
		} catch (err) {
			if (batch.length === 1 || this.options.isUnavailable(err)) {
				for (const p of batch) p.reject(err);
				return;
			}
			for (const p of batch) {
				try {
					const [result] = await this.options.write([p.item]);
					p.resolve(result!);
				} catch (single) {
					p.reject(single);
				}
			}
		}
	}
}
