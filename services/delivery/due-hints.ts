/**
 * Which webhooks may have deliveries due, as this node heard it (new deliveries from the dispatcher,
 * a retry by hand, a retry this node scheduled, a webhook found due before), so that a round of the
 * work loop asks about those only. Asking about every active webhook each round cost 11-15 ms on
 * SQLite with 10,000 webhooks and took a quarter off the delivery rate. A full scan still runs every
 * FULL_SCAN_MS, for what no hint covers: another node's retries, a claim whose node died, a webhook
 * switched back on, rows changed behind the gateway's back.
 */
export const FULL_SCAN_MS = 5_000;

/** The `delivery.wake` event: webhooks with new deliveries, retries scheduled, or nothing named (look at all). */
export interface DeliveryWake {
	webhook_ids?: number[];
	retries?: Array<{ webhook_id: number; at: number }>;
}

/** A hinted webhook as ripe() hands it out; settle() forgets it only if no new hint came since. */
export interface Ripe {
	id: number;
	version: number;
}

export class DueHints {
	/**
	 * Webhooks to ask about now, with the latest hint's version, in the order they are asked about:
	 * one found due again goes to the back, so webhooks that stay due (an open breaker, a full cap)
	 * cannot keep the others out of a round's page.
	 */
	private readonly soon = new Map<number, number>();
	/** Retries scheduled, per webhook: when each comes due (epoch ms). */
	private readonly later = new Map<number, number[]>();
	private version = 0;
	private nextFullScanAt = 0;
	/** scanAll() calls so far, and how many there had been when the running full scan began. */
	private scanRequests = 0;
	private scanStartedAt = 0;

	constructor(
		private readonly fullScanMs = FULL_SCAN_MS,
		private readonly now: () => number = Date.now,
	) {}

	/** These webhooks may have deliveries due from `at` on (now by default). */
	hint(ids: Iterable<number>, at = this.now()): void {
		const now = this.now();
		for (const id of ids) {
			if (at <= now) this.markSoon(id);
			else this.later.set(id, [...(this.later.get(id) ?? []), at]);
		}
	}

	/** Something changed that no hint describes: the next round scans every active webhook. */
	scanAll(): void {
		this.scanRequests += 1;
		this.nextFullScanAt = 0;
	}

	get fullScanDue(): boolean {
		return this.now() >= this.nextFullScanAt;
	}

	/** A full scan starts with its first page. */
	fullScanStarted(): void {
		this.scanStartedAt = this.scanRequests;
	}

	/** A full scan went round every active webhook: the next one in fullScanMs, or at once if one was asked for meanwhile. */
	fullScanDone(): void {
		this.nextFullScanAt = this.scanRequests === this.scanStartedAt ? this.now() + this.fullScanMs : 0;
	}

	/** Up to `limit` hinted webhooks whose time has come, in turn. */
	ripe(limit: number): Ripe[] {
		const now = this.now();
		for (const [id, times] of this.later) {
			const pending = times.filter((at) => at > now);
			if (pending.length === times.length) continue;
			this.markSoon(id);
			if (pending.length > 0) this.later.set(id, pending);
			else this.later.delete(id);
		}
		const ready: Ripe[] = [];
		for (const [id, version] of this.soon) {
			if (ready.length >= limit) break;
			ready.push({ id, version });
		}
		return ready;
	}

	/**
	 * The ripe webhooks were checked and only `due` have deliveries due: the others are forgotten,
	 * unless hinted again while they were being checked; the due ones go to the back of the turn.
	 */
	settle(checked: readonly Ripe[], due: readonly number[]): void {
		const stillDue = new Set(due);
		for (const { id, version } of checked) {
			if (this.soon.get(id) !== version) continue;
			this.soon.delete(id);
			if (stillDue.has(id)) this.soon.set(id, version);
		}
	}

	/** Webhooks hinted, now or for later (for tests and diagnostics). */
	get size(): number {
		return new Set([...this.soon.keys(), ...this.later.keys()]).size;
	}

	/** Asked about in the next rounds; one already waiting keeps its place in the turn. */
	private markSoon(id: number): void {
		this.version += 1;
		this.soon.set(id, this.version);
	}
}
