/**
 * Webhook hosts are resolved without tying up libuv's thread pool, which runs every SQLite statement
 * and argon2 check too (4 threads unless UV_THREADPOOL_SIZE says otherwise). dns.lookup (getaddrinfo)
 * blocks a thread of it for as long as the resolver takes, and a few webhooks whose names resolve
 * slowly (a DNS server that answers late or never: 10 s and more) stalled the whole node. So names
 * are asked of DNS through c-ares (sockets, no thread, a timeout of our own); getaddrinfo is asked
 * only for what DNS does not know (/etc/hosts and other system sources, `localhost`), at most
 * `concurrent` at once, and an ask that cannot get a turn within `waitMs` fails without running.
 * Asks for one name while its resolution runs share it; answers (failures too) are kept briefly.
 */
import { lookup as dnsLookup, type LookupAddress } from "node:dns";
import { Resolver } from "node:dns/promises";
import { LRUCache } from "lru-cache";
import { BoundedConcurrency, WaitedTooLong } from "../../lib/async";

export interface HostLookupOptions {
	/** getaddrinfo lookups at once, and asks waiting for one at most. */
	concurrent: number;
	maxWaiting: number;
	waitMs: number;
	ttlMs: number;
	failureTtlMs: number;
	/** DNS alone, without the thread pool. */
	queryDns(hostname: string): Promise<LookupAddress[]>;
	/** The system's resolution (getaddrinfo): a thread of the pool each. */
	systemLookup(hostname: string): Promise<LookupAddress[]>;
}

/** The refusal when no lookup could start in time: a busy resolver, not an answer about the name. */
export const LOOKUP_BUSY = "EDNSBUSY";
const DNS_TIMEOUT = "ETIMEOUT";
/** RFC 6761: these are the machine itself, answered by the system, never asked of DNS. */
const LOCALHOST = /^(.+\.)?localhost\.?$/i;

export const systemLookup = (hostname: string): Promise<LookupAddress[]> =>
	new Promise((resolve, reject) => dnsLookup(hostname, { all: true }, (err, addresses) => (err ? reject(err) : resolve(addresses))));

/**
 * A and AAAA records through c-ares; with neither, the first failure (ETIMEOUT when DNS did not
 * answer). The resolver is the system's servers with 2 tries of 1.5 s: an answer within undici's
 * 5 s connect timeout, or a timeout of our own.
 */
export function dnsQuery(resolver = new Resolver({ timeout: 1_500, tries: 2 })) {
	return async (hostname: string): Promise<LookupAddress[]> => {
		const [v4, v6] = await Promise.allSettled([resolver.resolve4(hostname), resolver.resolve6(hostname)]);
		const addresses: LookupAddress[] = [
			...(v4.status === "fulfilled" ? v4.value.map((address) => ({ address, family: 4 })) : []),
			...(v6.status === "fulfilled" ? v6.value.map((address) => ({ address, family: 6 })) : []),
		];
		if (addresses.length > 0) return addresses;
		const failures = [v4, v6].flatMap((r) => (r.status === "rejected" ? [r.reason as NodeJS.ErrnoException] : []));
		throw failures.find((err) => err.code === DNS_TIMEOUT) ?? failures[0] ?? Object.assign(new Error(`no address for ${hostname}`), { code: "ENODATA" });
	};
}

const DEFAULTS: HostLookupOptions = { concurrent: 2, maxWaiting: 500, waitMs: 5_000, ttlMs: 10_000, failureTtlMs: 10_000, queryDns: dnsQuery(), systemLookup };

type Kept = { addresses: LookupAddress[] } | { error: Error };

function busy(hostname: string, why: string): Error {
	return Object.assign(new Error(`cannot resolve ${hostname} now: ${why}`), { code: LOOKUP_BUSY });
}

export class HostLookup {
	private readonly options: HostLookupOptions;
	private readonly kept: LRUCache<string, Kept>;
	private readonly inFlight = new Map<string, Promise<LookupAddress[]>>();
	private readonly systemLookups: BoundedConcurrency;

	constructor(options: Partial<HostLookupOptions> = {}) {
		this.options = { ...DEFAULTS, ...options };
		this.kept = new LRUCache({ max: 10_000, ttl: this.options.ttlMs });
		this.systemLookups = new BoundedConcurrency(this.options.concurrent, this.options.maxWaiting, this.options.waitMs);
	}

	resolve(hostname: string): Promise<LookupAddress[]> {
		const kept = this.kept.get(hostname);
		if (kept) return "error" in kept ? Promise.reject(kept.error) : Promise.resolve(kept.addresses);
		const running = this.inFlight.get(hostname);
		if (running) return running;
		const lookup = this.resolveNow(hostname)
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

	/**
	 * DNS first; the system's lookup for `localhost` and for names DNS does not know (it may find them
	 * in /etc/hosts), never after a DNS timeout (getaddrinfo would wait on the same silent server).
	 */
	private async resolveNow(hostname: string): Promise<LookupAddress[]> {
		if (!LOCALHOST.test(hostname)) {
			try {
				return await this.options.queryDns(hostname);
			} catch (err) {
				if ((err as NodeJS.ErrnoException).code === DNS_TIMEOUT) throw err;
			}
		}
		const lookup = this.systemLookups.run(() => this.options.systemLookup(hostname));
		if (!lookup) throw busy(hostname, "too many lookups waiting");
		try {
			return await lookup;
		} catch (err) {
			if (err instanceof WaitedTooLong) throw busy(hostname, `no lookup could start within ${this.options.waitMs} ms`);
			throw err;
		}
	}
}

/** The one per process: the thread pool it protects is the process's. */
export const webhookHosts = new HostLookup();
