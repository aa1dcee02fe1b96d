/**
 * Webhook hosts are resolved with dns.lookup (getaddrinfo: /etc/hosts, then the system's resolver),
 * which blocks a thread of libuv's pool for as long as the resolver takes. That pool (4 threads
 * unless UV_THREADPOOL_SIZE says otherwise) also runs every SQLite statement and argon2 check: a few
 * webhooks whose names resolve slowly (a DNS server that answers late or never: resolv.conf's
 * timeout x attempts, 10 s and more) stalled the whole node. So: at most `concurrent` lookups run at
 * once, asks for one name while its lookup runs share it, answers (failures too) are kept briefly,
 * and an ask that cannot get a turn within `waitMs` fails without ever running.
 */
import { lookup as dnsLookup, type LookupAddress } from "node:dns";
import { LRUCache } from "lru-cache";

export interface HostLookupOptions {
	concurrent: number;
	maxWaiting: number;
	waitMs: number;
	ttlMs: number;
	failureTtlMs: number;
	lookup(hostname: string): Promise<LookupAddress[]>;
}

/** The refusal when no lookup could start in time: a busy resolver, not an answer about the name. */
export const LOOKUP_BUSY = "EDNSBUSY";

export const systemLookup = (hostname: string): Promise<LookupAddress[]> =>
	new Promise((resolve, reject) => dnsLookup(hostname, { all: true }, (err, addresses) => (err ? reject(err) : resolve(addresses))));

const DEFAULTS: HostLookupOptions = { concurrent: 2, maxWaiting: 500, waitMs: 5_000, ttlMs: 10_000, failureTtlMs: 10_000, lookup: systemLookup };

interface Waiter {
	start(): void;
	timer: NodeJS.Timeout;
}

type Kept = { addresses: LookupAddress[] } | { error: Error };

function busy(hostname: string, why: string): Error {
	return Object.assign(new Error(`cannot resolve ${hostname} now: ${why}`), { code: LOOKUP_BUSY });
}

export class HostLookup {
	private readonly options: HostLookupOptions;
	private readonly kept: LRUCache<string, Kept>;
	private readonly inFlight = new Map<string, Promise<LookupAddress[]>>();
	private readonly waiting: Waiter[] = [];
	private running = 0;

	constructor(options: Partial<HostLookupOptions> = {}) {
		this.options = { ...DEFAULTS, ...options };
		this.kept = new LRUCache({ max: 10_000, ttl: this.options.ttlMs });
	}

	resolve(hostname: string): Promise<LookupAddress[]> {
		const kept = this.kept.get(hostname);
		if (kept) return "error" in kept ? Promise.reject(kept.error) : Promise.resolve(kept.addresses);
		const running = this.inFlight.get(hostname);
		if (running) return running;
		const lookup = this.acquire(hostname)
			.then(async () => {
				try {
					return await this.options.lookup(hostname);
				} finally {
					this.release();
				}
			})
			.then(
				(addresses) => {
					this.kept.set(hostname, { addresses });
					return addresses;
				},
				(err: Error & { code?: string }) => {
					if (err.code !== LOOKUP_BUSY) this.kept.set(hostname, { error: err }, { ttl: this.options.failureTtlMs });
					throw err;
				},
			)
			.finally(() => {
				this.inFlight.delete(hostname);
			});
		this.inFlight.set(hostname, lookup);
		return lookup;
	}

	/** Resolves once a lookup may start, holding a slot until release(); rejects busy. */
	private acquire(hostname: string): Promise<void> {
		if (this.running < this.options.concurrent) {
			this.running += 1;
			return Promise.resolve();
		}
		if (this.waiting.length >= this.options.maxWaiting) return Promise.reject(busy(hostname, "too many lookups waiting"));
		return new Promise<void>((resolve, reject) => {
			const waiter: Waiter = {
				start: resolve,
				timer: setTimeout(() => {
					this.waiting.splice(this.waiting.indexOf(waiter), 1);
					reject(busy(hostname, `no lookup could start within ${this.options.waitMs} ms`));
				}, this.options.waitMs),
			};
			this.waiting.push(waiter);
		});
	}

	/** A slot passes straight to the next in line, so nobody jumps the queue. */
	private release(): void {
		const next = this.waiting.shift();
		if (next) {
			clearTimeout(next.timer);
			next.start();
		} else this.running -= 1;
	}
}

/** The one per process: the thread pool it protects is the process's. */
export const webhookHosts = new HostLookup();
