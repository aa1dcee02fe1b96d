/**
 * Work that only one node of the cluster may do at a time (the poller of a bot, the sender of a
 * bot's queue, the webhook dispatcher) runs under a lease in the shared state. The lease is renewed
 * while the work runs; if a renewal fails (lost to another node, or the store is away) the work's
 * signal aborts, and a lease whose holder died passes on when it expires. A runner renews all the
 * leases it holds in one round trip (a node polling 1,000 bots made 200 renewal calls a second).
 */
import type { SharedState } from "./state";

export interface LeaseOptions {
	ttlMs: number;
	/** How often a held lease is renewed; a third of the TTL by default. */
	renewEveryMs?: number;
}

export class LeaseRunner {
	private readonly running = new Map<string, AbortController>();
	private closed = false;
	private renewal: NodeJS.Timeout | null = null;

	constructor(
		private readonly state: SharedState,
		readonly owner: string,
		private readonly options: LeaseOptions,
	) {}

	isRunning(key: string): boolean {
		return this.running.has(key);
	}

	get held(): string[] {
		return [...this.running.keys()];
	}

	/**
	 * Which of `keys` `run` could take now, read in one round trip: nobody holds them, or this runner
	 * does without running them (a release that failed). Held by another owner: no point trying.
	 */
	async available(keys: readonly string[]): Promise<boolean[]> {
		const holders = await this.state.leaseHolders(keys);
		return keys.map((key, i) => {
			const holder = holders[i] ?? null;
			return holder === null || (holder === this.owner && !this.running.has(key));
		});
	}

	/**
	 * Starts `work` under the lease `key` if this node can take it; resolves false at once otherwise.
	 * Resolves true when the work has ended and the lease was released.
	 */
	async run(key: string, work: (signal: AbortSignal) => Promise<void>): Promise<boolean> {
		if (this.closed || this.running.has(key)) return false;
		let acquired: boolean;
		try {
			acquired = await this.state.acquireLease(key, this.owner, this.options.ttlMs);
		} catch {
			return false;
		}
		if (!acquired || this.running.has(key)) return false;
		// Shut down while the lease was being taken: abortAll could not stop work that had not started.
		if (this.closed) {
			await this.state.releaseLease(key, this.owner).catch(() => undefined);
			return false;
		}
		const controller = new AbortController();
		this.running.set(key, controller);
		this.renewal ??= setInterval(() => this.renewAll(), this.options.renewEveryMs ?? Math.floor(this.options.ttlMs / 3)).unref();
		try {
			await work(controller.signal);
		} finally {
			this.running.delete(key);
			if (this.running.size === 0 && this.renewal) {
				clearInterval(this.renewal);
				this.renewal = null;
			}
			await this.state.releaseLease(key, this.owner).catch(() => undefined);
		}
		return true;
	}

	/** Renews every held lease at once; the work under one that was lost, or under all if the store failed, aborts. */
	private renewAll(): void {
		const held = [...this.running];
		this.state.renewLeases(
			held.map(([key]) => key),
			this.owner,
			this.options.ttlMs,
		).then(
			(kept) => held.forEach(([, controller], i) => kept[i] || controller.abort()),
			() => held.forEach(([, controller]) => controller.abort()),
		);
	}

	/** Aborts the work under one lease (it ends and releases the lease). */
	abort(key: string): void {
		this.running.get(key)?.abort();
	}

	/**
	 * On shutdown: aborts every held lease's work (their `run` calls release them), and no work starts
	 * under this runner afterwards, also from a `run` still taking its lease (it lets it go).
	 */
	abortAll(): void {
		this.closed = true;
		for (const controller of this.running.values()) controller.abort();
	}
}
