/**
 * ingest: the Telegram receiver. Webhook pushes arrive through the api gateway's
 * /api/v1/telegram/webhook/<path> route; bots without a public URL are long-polled here (one poller
 * per bot in the whole cluster, each ingest node polling its share of them: ingest/poller-share.ts).
 * Either way an update is checked, normalised and stored exactly once (group commit,
 * services/ingest/store.ts), and Telegram's 2xx only follows the commit.
 */
import { randomBytes } from "node:crypto";
import type { Context, Service, ServiceSchema, ServiceSettingSchema } from "moleculer";
import { Op } from "sequelize";
import { fail, toApiError } from "../lib/errors";
import { LeaseRunner } from "../lib/lease";
import { metricsOf } from "../lib/metrics";
import { nodesRunning } from "../lib/reachable";
import { runtimeOf, type Runtime } from "../lib/runtime";
import { publishEvents } from "./broker/publish";
import { Batcher } from "../lib/batcher";
import { retentionMixin } from "../mixins/retention.mixin";
import { BotRoutes, secretMatches } from "./ingest/bot-routes";
import { carryOverChatMigration, migrationsIn, type ChatMigration } from "./ingest/chat-migration";
import { NormalizeError, normalizeUpdate } from "./ingest/normalize";
import { pollBot } from "./ingest/poller";
import { PollerShare, SHED_PAUSE_AFTER_ORPHAN_MS } from "./ingest/poller-share";
import { telegramUpdatesRetention } from "./ingest/retention";
import { storeUpdates, type ChatCache, type IncomingUpdate, type StoreOptions } from "./ingest/store";
import type { PushOutcome, TelegramPush } from "./ingest/types";

const WEBHOOK_PATH = /^[0-9a-f]{64}$/;
const POLLER_LEASE_MS = 15_000;
const POLLER_SCAN_MS = 5_000;
const pollerKey = (botId: number) => `poller:bot:${botId}`;
/**
 * Held while no ingest node may hand pollers back (a node took an orphan: poller-share.ts). One
 * holder name for every node, so any of them extends it, and it reads as a lease no node can take.
 */
const SHED_PAUSE_KEY = "poller:shed-paused";
const SHED_PAUSE_HOLDER = "ingest";

/** Pushes per receiveBatch call: the api node's batches stay well below it. */
export const MAX_PUSHES_PER_CALL = 512;

interface IngestLocalVars {
	runtime: Runtime;
	routes: BotRoutes;
	chatCache: ChatCache;
	batcher: Batcher<IncomingUpdate, boolean>;
	leases: LeaseRunner;
	/** Each poller started here, by bot, until it has ended and released its lease. */
	pollers: Map<number, Promise<boolean>>;
	pollerShare: PollerShare;
	/** The scan under way, and whether another was asked for meanwhile (it runs right after). */
	scan?: Promise<void>;
	scanAgain: boolean;
	/** Set once the service stops: no scan starts pollers after that. */
	stopping: boolean;
	scanTimer?: NodeJS.Timeout;
}

interface IngestMethods {
	accept(push: TelegramPush): Promise<PushOutcome>;
	refusal(err: unknown): PushOutcome;
	store(items: IncomingUpdate[], options?: StoreOptions): Promise<boolean[]>;
	carryOver(migrations: ChatMigration[]): Promise<void>;
	schedulePollers(): Promise<void>;
	scanPollers(): Promise<void>;
	startPoller(botId: number): void;
}

type IngestThis = Service<ServiceSettingSchema> & IngestLocalVars & IngestMethods;

const IngestService: ServiceSchema<ServiceSettingSchema, IngestThis> = {
	name: "ingest",
	// telegram_updates past the de-duplication window go (ingest/retention.ts).
	mixins: [retentionMixin([telegramUpdatesRetention])],
	settings: { rest: "/" },

	actions: {
		/** Operators' view (REPL `stats`): updates stored by the whole cluster in the last window. */
		stats: {
			permission: "system:read",
			params: { $$strict: true, window_seconds: { type: "number", integer: true, min: 1, max: 3_600, optional: true, convert: true } },
			async handler(this: IngestThis, ctx: Context<{ window_seconds?: number }>) {
				const windowSeconds = ctx.params.window_seconds ?? 60;
				const since = new Date(Date.now() - windowSeconds * 1_000);
				const updates = await this.runtime.db.models.TelegramUpdate.count({ where: { received_at: { [Op.gte]: since } } });
				return { window_seconds: windowSeconds, updates };
			},
		},

		/**
		 * Telegram pushes, batched by the api node that took them (services/api/telegram-pushes.ts); each
		 * is answered on its own, and only after its update is committed.
		 */
		receiveBatch: {
			visibility: "public",
			// Paths and secrets of bots: spans leave the params out.
			tracing: { tags: { params: false } },
			retryPolicy: { enabled: false },
			params: {
				$$strict: true,
				pushes: {
					type: "array",
					min: 1,
					max: MAX_PUSHES_PER_CALL,
					items: {
						type: "object",
						strict: true,
						props: {
							path: { type: "string", max: 128 },
							secret: { type: "string", max: 256, optional: true },
							body: { type: "object" },
						},
					},
				},
			},
			handler(this: IngestThis, ctx: Context<{ pushes: TelegramPush[] }>): Promise<PushOutcome[]> {
				return Promise.all(ctx.params.pushes.map((push) => this.accept(push).catch((err: unknown) => this.refusal(err))));
			},
		},
	},

	events: {
		/**
		 * A bot was added, changed mode or token, or deleted: forget its route, stop or start its poller
		 * (one waiting out a refused token starts again at the next scan, with the new one).
		 */
		async "bots.changed"(this: IngestThis, ctx: Context<{ bot_id?: number; token_replaced?: boolean }>) {
			this.routes.clear();
			const botId = ctx.params.bot_id;
			if (botId !== undefined && this.leases.isRunning(pollerKey(botId))) {
				const bot = await this.runtime.db.models.Bot.findByPk(botId, { attributes: ["is_active", "mode"], raw: true }).catch(() => null);
				if (ctx.params.token_replaced || (bot && (!bot.is_active || bot.mode !== "polling"))) this.leases.abort(pollerKey(botId));
			}
			await this.schedulePollers();
		},

		// An ingest node joined or left: the share of each changed (a stopping node has released its
		// leases by the time it disconnects).
		"$services.changed"(this: IngestThis) {
			void this.schedulePollers();
		},
		"$node.disconnected"(this: IngestThis) {
			void this.schedulePollers();
		},
		// Another node handed pollers back: taken now by a node under its share, not at its next scan.
		"ingest.pollersReleased"(this: IngestThis, ctx: Context) {
			if (ctx.nodeID !== this.broker.nodeID) void this.schedulePollers();
		},
	},

	methods: {
		/** One push: its bot's route and secret, then the update, normalised and stored (or found a duplicate). */
		async accept(this: IngestThis, push: TelegramPush): Promise<PushOutcome> {
			const route = WEBHOOK_PATH.test(push.path) ? await this.routes.find(push.path) : null;
			const rejected = metricsOf(this.broker).updatesRejected;
			if (!route || !route.active) {
				rejected.inc({ reason: "unknown_webhook" });
				throw fail.notFound("Webhook");
			}
			if (!secretMatches(route, push.secret)) {
				rejected.inc({ reason: "bad_secret" });
				throw fail.unauthorized("Missing or wrong X-Telegram-Bot-Api-Secret-Token");
			}
			let update;
			try {
				update = normalizeUpdate(push.body);
			} catch (err) {
				if (err instanceof NormalizeError) {
					rejected.inc({ reason: "malformed" });
					throw fail.validation([{ field: err.field, message: err.message }]);
				}
				throw err;
			}
			const duplicate = await this.batcher.submit({ botId: route.botId, update, raw: JSON.stringify(push.body) });
			return { ok: true, ...(duplicate ? { duplicate: true as const } : {}) };
		},

		/** A push that failed, as the answer its HTTP request gets; a failure of ours is logged here, where its cause is. */
		refusal(this: IngestThis, err: unknown): PushOutcome {
			const answer = toApiError(err);
			if (answer.status >= 500 && answer.status !== 503) this.logger.error("A Telegram push failed:", err);
			return { error: answer.body.error };
		},

		/** Stores a batch, publishes its events, and tells each update whether it was a duplicate. */
		async store(this: IngestThis, items: IncomingUpdate[], options: StoreOptions = {}): Promise<boolean[]> {
			const dedupWindowMs = this.runtime.config.telegramUpdateRetentionHours * 3_600_000;
			const result = await storeUpdates(this.runtime.db, items, this.chatCache, { ...options, dedupWindowMs });
			const metrics = metricsOf(this.broker);
			metrics.updatesReceived.inc(items.length);
			metrics.updatesDuplicate.inc(result.duplicates.filter(Boolean).length);
			await publishEvents(this.broker, result.events);
			const migrations = migrationsIn(items.filter((_item, i) => !result.duplicates[i]));
			if (migrations.length > 0) await this.carryOver(migrations);
			return result.duplicates;
		},

		/** A group became a supergroup: its grants and chat webhooks follow (ingest/chat-migration.ts). */
		async carryOver(this: IngestThis, migrations: ChatMigration[]): Promise<void> {
			for (const migration of migrations) {
				try {
					const carried = await carryOverChatMigration(this.runtime.db, migration);
					if (!carried) continue;
					for (const change of carried.grants) await this.broker.broadcast("auth.changed", change);
					if (carried.webhookIds.length > 0) await this.broker.broadcast("webhooks.changed", {});
					if (carried.grants.length + carried.webhookIds.length > 0) {
						this.logger.info(`Chat ${migration.fromTelegramId} became supergroup ${migration.toTelegramId}: ${carried.grants.length} grant(s) and ${carried.webhookIds.length} webhook(s) carried over`);
					}
				} catch (err) {
					// The supergroup's own service message tries again; the updates themselves are stored.
					this.logger.warn(`Cannot carry chat ${migration.fromTelegramId}'s grants over to supergroup ${migration.toTelegramId}:`, (err as Error).message);
				}
			}
		},

		/** Scans the polling bots (scanPollers); one scan at a time, and one more if asked meanwhile. */
		schedulePollers(this: IngestThis): Promise<void> {
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
		},

		/**
		 * Polls this node's share of the polling bots (ingest/poller-share.ts): one read of every
		 * poller lease's holder, then tries only free ones, and hands a few back when over the share.
		 */
		async scanPollers(this: IngestThis): Promise<void> {
			let botIds: number[];
			let available: boolean[];
			try {
				const bots = await this.runtime.db.models.Bot.findAll({ where: { mode: "polling", is_active: true }, attributes: ["id"], raw: true });
				botIds = bots.map((bot) => Number(bot.id));
				available = await this.leases.available([SHED_PAUSE_KEY, ...botIds.map(pollerKey)]);
			} catch (err) {
				this.logger.warn("Cannot list polling bots and their pollers:", (err as Error).message);
				return;
			}
			const running = new Set(botIds.filter((id) => this.leases.isRunning(pollerKey(id))));
			const free = new Set(botIds.filter((id, i) => available[i + 1] && !running.has(id)));
			const nodes = nodesRunning(this.broker, "ingest");
			const plan = this.pollerShare.plan({ self: this.broker.nodeID, nodes, bots: botIds, running, free, shedPaused: !available[0] }, Date.now());
			if (plan.orphans.length > 0) {
				this.logger.warn(`Bot(s) ${plan.orphans.join(", ")} left unpolled for a while: polled here, past this node's share of ${plan.share}`);
				await this.runtime.state.acquireLease(SHED_PAUSE_KEY, SHED_PAUSE_HOLDER, SHED_PAUSE_AFTER_ORPHAN_MS).catch(() => undefined);
			}
			if (plan.shed.length > 0) {
				this.logger.info(`Polling ${running.size} of ${botIds.length} polling bots, over this node's share of ${plan.share}: handing ${plan.shed.length} over`);
				// An aborted poller stores nothing it has not stored yet (its last getUpdates is not acked:
				// the next poller asks again from the stored offset), and releases its lease once it ends;
				// then the nodes under their share are told, to take them at once.
				for (const id of plan.shed) this.leases.abort(pollerKey(id));
				void Promise.allSettled(plan.shed.map((id) => this.pollers.get(id)))
					.then(() => this.broker.broadcast("ingest.pollersReleased", {}, "ingest"))
					.catch(() => undefined); // their next scan takes them anyway
			}
			for (const id of plan.take) this.startPoller(id);
		},

		/** Polls one bot under its lease, if this node can take it. */
		startPoller(this: IngestThis, botId: number): void {
			if (this.pollers.has(botId)) return; // running, or still taking its lease
			const deps = {
				db: this.runtime.db,
				keys: this.runtime.config.encryptionKeys,
				telegram: this.runtime.telegram,
				logger: this.logger,
				longPollSeconds: 25,
				store: (items: IncomingUpdate[], options: StoreOptions) => this.store(items, options),
			};
			const running = this.leases.run(pollerKey(botId), (signal) => pollBot(deps, botId, signal));
			this.pollers.set(botId, running);
			// A poller that throws stops; its lease goes, and the next scan starts it again.
			void running
				.catch((err: unknown) => this.logger.error(`Poller of bot ${botId} stopped:`, (err as Error).message))
				.finally(() => this.pollers.delete(botId));
		},
	},

	created(this: IngestThis) {
		this.runtime = runtimeOf(this.broker);
		const { db, config, state } = this.runtime;
		this.routes = new BotRoutes(db, config.encryptionKeys);
		this.chatCache = new Map();
		this.batcher = new Batcher<IncomingUpdate, boolean>({
			write: (items) => this.store(items),
			maxBatch: 256,
			// One transaction in flight per node, on MySQL too: every ingest transaction waits for the
			// event log's sequence row, so more at once only makes smaller batches queue for it (a
			// 2-worker cluster stored ~60% more updates/s with 1 than with 4; test/bench/ingest.bench.ts).
			concurrency: 1,
			isUnavailable: (err) => toApiError(err).status === 503,
		});
		this.leases = new LeaseRunner(state, `${this.broker.nodeID}:${randomBytes(4).toString("hex")}`, { ttlMs: POLLER_LEASE_MS });
		this.pollers = new Map();
		this.pollerShare = new PollerShare();
		this.scanAgain = false;
		this.stopping = false;
	},

	async started(this: IngestThis) {
		await this.schedulePollers();
		this.scanTimer = setInterval(() => void this.schedulePollers(), POLLER_SCAN_MS);
		this.scanTimer.unref();
	},

	async stopped(this: IngestThis) {
		this.stopping = true;
		clearInterval(this.scanTimer);
		await this.scan; // or a scan under way starts pollers after the ones below are aborted
		this.leases.abortAll();
		await Promise.allSettled([...this.pollers.values()]);
	},
};

export default IngestService;
