/**
 * ingest: the Telegram receiver. Webhook pushes arrive through the api gateway's
 * /api/v1/telegram/webhook/<path> route; bots without a public URL are long-polled here (one poller
 * per bot in the whole cluster, each ingest node polling its share of them: ingest/poller-scheduler.ts).
 * Either way an update is checked, normalised and stored exactly once (group commit,
 * services/ingest/store.ts), and Telegram's 2xx only follows the commit.
 */
import { randomBytes } from "node:crypto";
import type { Context, Service, ServiceSchema, ServiceSettingSchema } from "moleculer";
import { Op } from "sequelize";
import { fail, toApiError } from "../lib/errors";
import { LeaseRunner } from "../lib/lease";
import { metricsOf } from "../lib/metrics";
import { runtimeOf, type Runtime } from "../lib/runtime";
import { publishEvents } from "./broker/publish";
import { Batcher } from "../lib/batcher";
import { retentionMixin } from "../mixins/retention.mixin";
import { BotRoutes, secretMatches, type BotRoute } from "./ingest/bot-routes";
import { followChatMigration, migrationsIn, type ChatMigration } from "./ingest/chat-migration";
import { NormalizeError, readUpdate } from "./ingest/normalize";
import { refuseOverloaded } from "./ingest/overload";
import { PollerScheduler } from "./ingest/poller-scheduler";
import { telegramUpdatesRetention } from "./ingest/retention";
import { storeUpdates, type ChatCache, type IncomingUpdate, type StoreOptions } from "./ingest/store";
import { WEBHOOK_PATH, type PushOutcome, type TelegramPush } from "./ingest/types";

const POLLER_LEASE_MS = 15_000;
/** Pushes waiting for a group commit on one node at most (Telegram holds each bot's to 40-100 at once). */
const MAX_QUEUED_UPDATES = 10_000;
const MAX_QUEUED_UPDATE_BYTES = 128 * 1024 * 1024;

/** Pushes per receiveBatch call: the api node's batches stay well below it. */
export const MAX_PUSHES_PER_CALL = 512;

interface IngestLocalVars {
	runtime: Runtime;
	routes: BotRoutes;
	chatCache: ChatCache;
	batcher: Batcher<IncomingUpdate, boolean>;
	/** The pollers' leases (`poller:bot:<id>`), one owner per service instance. */
	leases: LeaseRunner;
	/** This node's pollers (ingest/poller-scheduler.ts). */
	pollers: PollerScheduler;
}

interface IngestMethods {
	accept(push: TelegramPush): Promise<PushOutcome>;
	checkedRoute(push: Pick<TelegramPush, "path" | "secret">): Promise<BotRoute>;
	refusal(err: unknown): PushOutcome;
	store(items: IncomingUpdate[], options?: StoreOptions): Promise<boolean[]>;
	carryOver(migrations: ChatMigration[]): Promise<void>;
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

		/**
		 * Whether a push to this webhook path with this secret would be taken, asked by the api node
		 * before it reads the body (services/api/telegram-pushes.ts): 404 or 401 as receiveBatch would answer.
		 */
		checkPush: {
			visibility: "public",
			tracing: { tags: { params: false } },
			params: {
				$$strict: true,
				path: { type: "string", max: 128 },
				secret: { type: "string", max: 256, optional: true },
			},
			async handler(this: IngestThis, ctx: Context<Pick<TelegramPush, "path" | "secret">>): Promise<{ ok: true }> {
				await this.checkedRoute(ctx.params);
				return { ok: true };
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
			await this.pollers.stopIfChanged(ctx.params.bot_id, ctx.params.token_replaced);
			await this.pollers.schedule();
		},

		// An ingest node joined or left: the share of each changed (a stopping node has released its
		// leases by the time it disconnects).
		"$services.changed"(this: IngestThis) {
			void this.pollers.schedule();
		},
		"$node.disconnected"(this: IngestThis) {
			void this.pollers.schedule();
		},
		// Another node handed pollers back: taken now by a node under its share, not at its next scan.
		"ingest.pollersReleased"(this: IngestThis, ctx: Context) {
			if (ctx.nodeID !== this.broker.nodeID) void this.pollers.schedule();
		},
	},

	methods: {
		/** One push: its bot's route and secret, then the update, normalised and stored (or found a duplicate). */
		async accept(this: IngestThis, push: TelegramPush): Promise<PushOutcome> {
			const route = await this.checkedRoute(push);
			const rejected = metricsOf(this.broker).updatesRejected;
			let read;
			try {
				read = readUpdate(push.body);
			} catch (err) {
				if (err instanceof NormalizeError) {
					rejected.inc({ reason: "malformed" });
					throw fail.validation([{ field: err.field, message: err.message }]);
				}
				throw err;
			}
			const duplicate = await this.batcher.submit({ botId: route.botId, ...read });
			return { ok: true, ...(duplicate ? { duplicate: true as const } : {}) };
		},

		/** The route of a push's webhook path, if it is an active bot's and the push carries its secret. */
		async checkedRoute(this: IngestThis, push: Pick<TelegramPush, "path" | "secret">): Promise<BotRoute> {
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
			return route;
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
			for (const migration of migrations) await followChatMigration(this.runtime.db, this.broker, this.logger, migration);
		},
	},

	created(this: IngestThis) {
		this.runtime = runtimeOf(this.broker);
		const { db, config, state, telegram } = this.runtime;
		this.routes = new BotRoutes(db, config.encryptionKeys);
		this.chatCache = new Map();
		this.batcher = new Batcher<IncomingUpdate, boolean>({
			write: (items) => this.store(items),
			maxBatch: 256,
			// Updates that passed their bot's secret, waiting for a slow or stalled database: past this,
			// Telegram is answered 503 and redelivers later.
			weight: (item) => item.raw.length,
			maxQueued: { items: MAX_QUEUED_UPDATES, weight: MAX_QUEUED_UPDATE_BYTES, full: refuseOverloaded(this.broker, "The update store") },
			// One transaction in flight per node, on MySQL too: every ingest transaction waits for the
			// event log's sequence row, so more at once only makes smaller batches queue for it (a
			// 2-worker cluster stored ~60% more updates/s with 1 than with 4; test/bench/ingest.bench.ts).
			concurrency: 1,
			isUnavailable: (err) => toApiError(err).status === 503,
		});
		this.leases = new LeaseRunner(state, `${this.broker.nodeID}:${randomBytes(4).toString("hex")}`, { ttlMs: POLLER_LEASE_MS });
		this.pollers = new PollerScheduler({
			db,
			config,
			telegram,
			state,
			logger: this.logger,
			leases: this.leases,
			broker: this.broker,
			store: (items, options) => this.store(items, options),
		});
	},

	async started(this: IngestThis) {
		await this.pollers.start();
	},

	async stopped(this: IngestThis) {
		await this.pollers.stopped();
	},
};

export default IngestService;
