/**
 * This node's pollers (poller.ts long-polls one bot): one poller per polling bot runs in the whole
 * cluster (a lease), and each ingest node polls its share of them (poller-share.ts). A scan runs
 * every few seconds and whenever the bots or the ingest nodes change; one scan at a time.
 */
import type { LoggerInstance, ServiceBroker } from "moleculer";
import type { GatewayConfig } from "../../lib/config";
import type { LeaseRunner } from "../../lib/lease";
import { nodesRunning } from "../../lib/reachable";
import type { Runtime } from "../../lib/runtime";
import { pollBot, type PollerDeps } from "./poller";
import { PollerShare, SHED_PAUSE_AFTER_ORPHAN_MS } from "./poller-share";
import type { IncomingUpdate, StoreOptions } from "./store";

/** The runtime's parts the pollers use (its shared state also holds the shed pause), and the service's. */
export interface PollerSchedulerDeps extends Pick<Runtime, "db" | "telegram" | "state"> {
	config: Pick<GatewayConfig, "encryptionKeys">;
	logger: LoggerInstance;
	/** The service's leases: a poller runs under `poller:bot:<id>`. */
	leases: LeaseRunner;
	/** Lists the ingest nodes (the share), and tells them when pollers were handed back. */
	broker: ServiceBroker;
	/** Stores a poller's updates with its bot's new offset (the service's group commit). */
	store(items: IncomingUpdate[], options: StoreOptions): Promise<unknown>;
}

const POLLER_SCAN_MS = 5_000;
const pollerKey = (botId: number) => `poller:bot:${botId}`;
/**
 * Held while no ingest node may hand pollers back (a node took an orphan: poller-share.ts). One
 * holder name for every node, so any of them extends it, and it reads as a lease no node can take.
 */
const SHED_PAUSE_KEY = "poller:shed-paused";
const SHED_PAUSE_HOLDER = "ingest";

export class PollerScheduler {
	/** Each poller started here, by bot, until it has ended and released its lease. */
	private readonly pollers = new Map<number, Promise<boolean>>();
	private readonly pollerShare = new PollerShare();
	/** The scan under way, and whether another was asked for meanwhile (it runs right after). */
	private scan?: Promise<void>;
	private scanAgain = false;
	/** Set once the service stops: no scan starts pollers after that. */
	private stopping = false;
	private scanTimer?: NodeJS.Timeout;

	constructor(private readonly deps: PollerSchedulerDeps) {}

	/** Scans now, then every few seconds (events bring scans forward: schedule()). */
	async start(): Promise<void> {
		await this.schedule();
		this.scanTimer = setInterval(() => void this.schedule(), POLLER_SCAN_MS);
		this.scanTimer.unref();
	}

	/** Scans the polling bots (scanPollers); one scan at a time, and one more if asked meanwhile. */
	schedule(): Promise<void> {
		if (this.stopping) return Promise.resolve();
		if (this.scan) {
			this.scanAgain = true;
			return this.scan;
		}
		const scan = async () => {
			do {
				this.scanAgain = false;
				await this.scanPollers();
			} while (this.scanAgain && !this.stopping);
		};
		this.scan = scan().finally(() => (this.scan = undefined));
		return this.scan;
	}

	/** A bot changed (bots.changed): its poller here, if any, stops if its token was replaced or it polls no more. */
	async stopIfChanged(botId: number | undefined, tokenReplaced: boolean | undefined): Promise<void> {
		const { db, leases } = this.deps;
		if (botId === undefined || !leases.isRunning(pollerKey(botId))) return;
		const bot = await db.models.Bot.findByPk(botId, { attributes: ["is_active", "mode"], raw: true }).catch(() => null);
		if (tokenReplaced || (bot && (!bot.is_active || bot.mode !== "polling"))) leases.abort(pollerKey(botId));
	}

	/** Waits for a scan under way, then aborts every poller here and resolves once they have ended. */
	async stopped(): Promise<void> {
		this.stopping = true;
		clearInterval(this.scanTimer);
		await this.scan; // or a scan under way starts pollers after the ones below are aborted
		this.deps.leases.abortAll();
		await Promise.allSettled([...this.pollers.values()]);
	}

	/**
	 * Polls this node's share of the polling bots (ingest/poller-share.ts): one read of every
	 * poller lease's holder, then tries only free ones, and hands a few back when over the share.
	 */
	private async scanPollers(): Promise<void> {
		const { db, state, logger, leases, broker } = this.deps;
		let botIds: number[];
		let available: boolean[];
		try {
			const bots = await db.models.Bot.findAll({ where: { mode: "polling", is_active: true }, attributes: ["id"], raw: true });
			botIds = bots.map((bot) => Number(bot.id));
			available = await leases.available([SHED_PAUSE_KEY, ...botIds.map(pollerKey)]);
		} catch (err) {
			logger.warn("Cannot list polling bots and their pollers:", (err as Error).message);
			return;
		}
		const running = new Set(botIds.filter((id) => leases.isRunning(pollerKey(id))));
		const free = new Set(botIds.filter((id, i) => available[i + 1] && !running.has(id)));
		const nodes = nodesRunning(broker, "ingest");
		const plan = this.pollerShare.plan({ self: broker.nodeID, nodes, bots: botIds, running, free, shedPaused: !available[0] }, Date.now());
		if (plan.orphans.length > 0) {
			logger.warn(`Bot(s) ${plan.orphans.join(", ")} left unpolled for a while: polled here, past this node's share of ${plan.share}`);
			await state.acquireLease(SHED_PAUSE_KEY, SHED_PAUSE_HOLDER, SHED_PAUSE_AFTER_ORPHAN_MS).catch(() => undefined);
		}
		if (plan.shed.length > 0) {
			logger.info(`Polling ${running.size} of ${botIds.length} polling bots, over this node's share of ${plan.share}: handing ${plan.shed.length} over`);
			// An aborted poller stores nothing it has not stored yet (its last getUpdates is not acked:
			// the next poller asks again from the stored offset), and releases its lease once it ends;
			// then the nodes under their share are told, to take them at once.
			for (const id of plan.shed) leases.abort(pollerKey(id));
			void Promise.allSettled(plan.shed.map((id) => this.pollers.get(id)))
				.then(() => broker.broadcast("ingest.pollersReleased", {}, "ingest"))
				.catch(() => undefined); // their next scan takes them anyway
		}
		for (const id of plan.take) this.startPoller(id);
	}

	/** Polls one bot under its lease, if this node can take it. */
	private startPoller(botId: number): void {
		const { db, config, telegram, logger, leases } = this.deps;
		if (this.pollers.has(botId)) return; // running, or still taking its lease
		const deps: PollerDeps = {
			db,
			keys: config.encryptionKeys,
			telegram,
			logger,
			longPollSeconds: 25,
			store: (items, options) => this.deps.store(items, options),
		};
		const running = leases.run(pollerKey(botId), (signal) => pollBot(deps, botId, signal));
		this.pollers.set(botId, running);
		// A poller that throws stops; its lease goes, and the next scan starts it again.
		void running
			.catch((err: unknown) => logger.error(`Poller of bot ${botId} stopped:`, (err as Error).message))
			.finally(() => this.pollers.delete(botId));
	}
}
