/**
 * Retention for the services that own tables which grow with traffic: every hour (the first time a
 * minute after the service starts) each of the service's retention jobs removes what is past its
 * retention, under a lease of its own, so one node at a time prunes a table however many nodes run
 * the service. The jobs themselves are plain functions (services/<name>/retention.ts) over
 * lib/db/prune.ts; `pruneExpired()` runs them all at once (tests, operators).
 */
import { randomBytes } from "node:crypto";
import type { Service, ServiceSchema, ServiceSettingSchema } from "moleculer";
import type { GatewayConfig } from "../lib/config";
import type { Database } from "../lib/db/connection";
import type { PruneOptions } from "../lib/db/prune";
import { LeaseRunner } from "../lib/lease";
import { runtimeOf } from "../lib/runtime";

export interface RetentionJob {
	/** The table it prunes: names its lease and its log lines. */
	table: string;
	/** Rows from before this go now; null when the configuration keeps them for ever. */
	cutoff(config: GatewayConfig, now: number): Date | null;
	/** Removes them; resolves with how many went. */
	prune(db: Database, cutoff: Date, options: PruneOptions): Promise<number>;
}

export const HOUR_MS = 60 * 60_000;
export const DAY_MS = 24 * HOUR_MS;

/** The cutoff of a retention set in days: `days` before `now`, or null for 0 (kept for ever). */
export function daysBefore(now: number, days: number): Date | null {
	return days === 0 ? null : new Date(now - days * DAY_MS);
}
const PRUNE_EVERY_MS = HOUR_MS;
const FIRST_PRUNE_AFTER_MS = 60_000;
/** Renewed every third of it while a job runs: a holder that died frees its table this long after. */
const PRUNE_LEASE_MS = 30_000;

interface RetentionState {
	leases: LeaseRunner;
	timer?: NodeJS.Timeout;
	/** The run under way (what stopping waits for), or null. */
	running: Promise<void> | null;
	stopping: boolean;
}

export type RetentionThis = Service<ServiceSettingSchema> & {
	retention: RetentionState;
	pruneExpired(): Promise<void>;
};

/** The retention of `jobs`, mixed into the service that owns their tables. */
export function retentionMixin(jobs: RetentionJob[]): Partial<ServiceSchema> {
	const mixin: Partial<ServiceSchema<ServiceSettingSchema, RetentionThis>> = {
		methods: {
			/** Runs every job once, each under its lease (a job another node is running is skipped). */
			async pruneExpired(this: RetentionThis): Promise<void> {
				const { db, config } = runtimeOf(this.broker);
				for (const job of jobs) {
					if (this.retention.stopping) return;
					const cutoff = job.cutoff(config, Date.now());
					if (cutoff === null) continue;
					await this.retention.leases.run(`retention:${job.table}`, async (signal) => {
						try {
							const removed = await job.prune(db, cutoff, { signal });
							if (removed > 0) this.logger.info(`Retention: removed ${removed} rows of ${job.table} from before ${cutoff.toISOString()}`);
						} catch (err) {
							this.logger.warn(`Retention: cannot remove old rows of ${job.table}:`, (err as Error).message);
						}
					});
				}
			},
		},

		created(this: RetentionThis) {
			const owner = `${this.broker.nodeID}:${randomBytes(4).toString("hex")}`;
			this.retention = { leases: new LeaseRunner(runtimeOf(this.broker).state, owner, { ttlMs: PRUNE_LEASE_MS }), running: null, stopping: false };
		},

		async started(this: RetentionThis) {
			const retention = this.retention;
			const prune = () => {
				// A run that outlasted the hour goes on (and stays the one stopping waits for).
				if (retention.running || retention.stopping) return;
				retention.running = this.pruneExpired().finally(() => {
					retention.running = null;
				});
			};
			// A timeout, then an interval: both kinds of Node timer are cleared by clearTimeout.
			retention.timer = setTimeout(() => {
				prune();
				retention.timer = setInterval(prune, PRUNE_EVERY_MS).unref();
			}, FIRST_PRUNE_AFTER_MS).unref();
		},

		async stopped(this: RetentionThis) {
			this.retention.stopping = true;
			clearTimeout(this.retention.timer);
			this.retention.leases.abortAll();
			await this.retention.running;
		},
	};
	// Moleculer types a mixin for the plain Service `this`; its handlers are written for RetentionThis.
	return mixin as unknown as Partial<ServiceSchema>;
}
