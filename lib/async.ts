/** Waits `ms`, or less if `signal` aborts first; never rejects, and leaves no listener behind. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
	return new Promise<void>((resolve) => {
		if (signal?.aborted) return resolve();
		const done = () => {
			clearTimeout(timer);
			signal?.removeEventListener("abort", done);
			resolve();
		};
		const timer = setTimeout(done, ms);
		signal?.addEventListener("abort", done, { once: true });
	});
}

/**
 * A loop's doorbell: `wait(ms)` sleeps until `ring()` or `ms`; a ring while nobody waits is kept,
 * so the next wait returns at once instead of missing it.
 */
export class Doorbell {
	private waiters = new Set<() => void>();
	private rung = false;

	ring(): void {
		if (this.waiters.size === 0) {
			this.rung = true;
			return;
		}
		const waiters = [...this.waiters];
		this.waiters.clear();
		for (const wake of waiters) wake();
	}

	wait(ms: number): Promise<void> {
		if (this.rung) {
			this.rung = false;
			return Promise.resolve();
		}
		return new Promise((resolve) => {
			const done = () => {
				clearTimeout(timer);
				this.waiters.delete(done);
				resolve();
			};
			const timer = setTimeout(done, ms);
			this.waiters.add(done);
		});
	}
}
