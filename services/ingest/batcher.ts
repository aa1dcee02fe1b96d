/**
 * Group commit: updates that arrive while a transaction is being written wait for the next one,
 * which takes all of them (up to maxBatch). At low load each update gets a transaction of its own
 * at once; under load hundreds share one, which is what lets SQLite keep up. A batch that fails for
 * a reason other than the database being away is retried one update at a time, so one bad update
 * cannot fail its neighbours.
 */
export interface BatcherOptions<I, O> {
	write(items: I[]): Promise<O[]>;
	maxBatch: number;
	/** Transactions in flight at once (1 for SQLite; a few on MySQL). */
	concurrency: number;
	/** Errors that say the store is away: every item fails at once, no one-by-one retry. */
	isUnavailable(err: unknown): boolean;
}

interface Pending<I, O> {
	item: I;
	resolve(value: O): void;
	reject(err: unknown): void;
}

export class Batcher<I, O> {
	private queue: Array<Pending<I, O>> = [];
	private running = 0;

	constructor(private readonly options: BatcherOptions<I, O>) {}

	get depth(): number {
		return this.queue.length;
	}

	submit(item: I): Promise<O> {
		return new Promise<O>((resolve, reject) => {
			this.queue.push({ item, resolve, reject });
			this.pump();
		});
	}

	private pump(): void {
		while (this.running < this.options.concurrency && this.queue.length > 0) {
			const batch = this.queue.splice(0, this.options.maxBatch);
			this.running += 1;
			void this.flush(batch).finally(() => {
				this.running -= 1;
				this.pump();
			});
		}
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
