/**
 * bots: the bot registry (tokens sealed at rest, never returned or logged), the Telegram webhook of
 * each bot, and the durable outbound queue that sends within Telegram's flood limits. One sender per
 * bot runs in the whole cluster (a lease); every node scans for due messages and takes the leases
 * that are free.
 */
import { randomBytes } from "node:crypto";
import type { Context, Service, ServiceSchema, ServiceSettingSchema } from "moleculer";
import { Op } from "sequelize";
import { fail } from "../lib/errors";
import { LeaseRunner } from "../lib/lease";
import { metricsOf } from "../lib/metrics";
import { principalOf, respondCreated, respondWith, type GatewayContext } from "../lib/meta";
import { pageParams } from "../lib/paging";
import { runtimeOf, type Runtime } from "../lib/runtime";
import { iso } from "../lib/time";
import { enqueueMessage, type EnqueueParams } from "./bots/outbox";
import { followChatMigration } from "./ingest/chat-migration";
import { queueStatsActions } from "./bots/queue-stats";
import { BOT_TOKEN, botToken, botView, identifyBot, webhookUrl } from "./bots/registry";
import { announce, connectTelegram, deactivate, register, whileRegistering, type RegistrationDeps } from "./bots/registration";
import { rotateEncryptionKeys } from "./bots/key-rotation";
import { MAX_MARKUP_TEXT_LENGTH } from "./bots/outbox";
import { SenderScheduler } from "./bots/sender-scheduler";
import { replaceToken } from "./bots/token-replacement";
import { noteRound, reconcileBots, roundIsDue, type Round } from "./bots/reconciler";
import { ID } from "../lib/validator";

const SENDER_LEASE_MS = 10_000;
const SENDER_SCAN_MS = 1_000;
/** How often each node looks whether a reconciliation round is due (the round itself: TELEGRAM_RECONCILE_SECONDS). */
const RECONCILE_CHECK_MS = 60_000;

interface BotsLocalVars {
	runtime: Runtime;
	leases: LeaseRunner;
	/** This node's senders (bots/sender-scheduler.ts). */
	senders: SenderScheduler;
	scanTimer?: NodeJS.Timeout;
	reconcileTimer?: NodeJS.Timeout;
}

interface BotsMethods {
	/** What registration (bots/registration.ts) works with. */
	registration(): RegistrationDeps;
	/** Starts the bot's sender here, if free, and tells every node its queue has work (outbound.kick). */
	kickSender(botId: number): Promise<void>;
	/** Runs one round of the reconciler (services/bots/reconciler.ts) under the cluster's lease; null when another node holds it, or none is due. */
	reconcile(force: boolean): Promise<Round | null>;
}

type BotsThis = Service<ServiceSettingSchema> & BotsLocalVars & BotsMethods;

interface CreateParams {
	token: string;
	display_name?: string;
	description?: string;
}

const BotsService: ServiceSchema<ServiceSettingSchema, BotsThis> = {
	name: "bots",
	mixins: [queueStatsActions as Partial<ServiceSchema>],
	settings: { rest: "/" },

	actions: {
		create: {
			rest: "POST /bots",
			conflict: "the bot is registered already, or another request is registering or changing it",
			permission: "bots:write",
			retryPolicy: { enabled: false },
			timeout: 30_000,
			params: {
				$$strict: true,
				token: { type: "string", trim: true, pattern: BOT_TOKEN, messages: { stringPattern: "The 'token' field must be a Telegram bot token (<bot id>:<secret>)." } },
				display_name: { type: "string", trim: true, min: 1, max: 128, optional: true },
				description: { type: "string", max: 2_000, optional: true },
			},
			async handler(this: BotsThis, ctx: GatewayContext<CreateParams>) {
				const { token, display_name, description } = ctx.params;
				const registration = this.registration();
				const me = await identifyBot(registration.telegram, token);
				// One registration of a bot at a time: its row stays inactive until Telegram is set up,
				// and a second one meanwhile would replace the webhook secret under the first.
				const bot = await whileRegistering(registration.state, me.id, () =>
					register(registration, token, me, { display_name, description, created_by_user_id: principalOf(ctx).user_id || null }),
				);
				respondCreated(ctx, `/bots/${bot.id}`);
				return bot;
			},
		},

		list: {
			rest: "GET /bots",
			permission: "bots:read",
			params: { $$strict: true, ...pageParams, is_active: { type: "boolean", convert: true, optional: true } },
			async handler(this: BotsThis, ctx: GatewayContext<{ limit?: number; cursor?: string; is_active?: boolean }>) {
				const limit = ctx.params.limit ?? 50;
				const after = this.runtime.cursors.after("bots", ctx.params.cursor);
				const rows = await this.runtime.db.models.Bot.findAll({
					where: {
						...(after === null ? {} : { id: { [Op.gt]: after } }),
						...(ctx.params.is_active === undefined ? {} : { is_active: ctx.params.is_active }),
					},
					order: [["id", "ASC"]],
					limit: limit + 1,
				});
				return this.runtime.cursors.page("bots", rows, limit, (b) => b.id, (b) => botView(b, this.runtime.config.publicUrl));
			},
		},

		get: {
			rest: "GET /bots/:id",
			permission: "bots:read",
			params: { $$strict: true, id: ID },
			async handler(this: BotsThis, ctx: GatewayContext<{ id: number }>) {
				const bot = await this.runtime.db.models.Bot.findByPk(ctx.params.id);
				if (!bot) throw fail.notFound("Bot");
				return botView(bot, this.runtime.config.publicUrl);
			},
		},

		/** `token`: the bot's new token after a revoke at BotFather (bots/token-replacement.ts); queue, chats and webhooks stay. */
		update: {
			rest: "PATCH /bots/:id",
			conflict: "a new token for a deleted bot, or another request is registering or changing the bot",
			permission: "bots:write",
			retryPolicy: { enabled: false },
			timeout: 30_000,
			params: {
				$$strict: true,
				id: ID,
				display_name: { type: "string", trim: true, min: 1, max: 128, optional: true },
				description: { type: "string", max: 2_000, optional: true, nullable: true },
				token: { type: "string", trim: true, pattern: BOT_TOKEN, optional: true, messages: { stringPattern: "The 'token' field must be a Telegram bot token (<bot id>:<secret>)." } },
			},
			async handler(this: BotsThis, ctx: GatewayContext<{ id: number; display_name?: string; description?: string | null; token?: string }>) {
				const { db, config, telegram, state } = this.runtime;
				const found = await db.models.Bot.findByPk(ctx.params.id);
				if (!found) throw fail.notFound("Bot");
				const { display_name, description, token } = ctx.params;
				let bot = found;
				if (token !== undefined) {
					const registration = this.registration();
					bot = await whileRegistering(state, Number(found.telegram_id), async () => {
						// Read again under the lock: a deletion or registration may have just finished.
						const current = (await db.models.Bot.findByPk(found.id)) ?? found;
						const connect = (newToken: string, row: typeof current, secret: string) => connectTelegram(registration, newToken, row, secret);
						await replaceToken({ db, keys: config.encryptionKeys, telegram, state, connect }, current, token);
						return current;
					});
					// Routes and the poller read the new token; the paused queue goes.
					await this.broker.broadcast("bots.changed", { bot_id: bot.id, token_replaced: true });
					await this.kickSender(bot.id);
				}
				if (display_name !== undefined || description !== undefined) {
					await bot.update({ ...(display_name !== undefined ? { display_name } : {}), ...(description !== undefined ? { description } : {}) });
				}
				return botView(bot, config.publicUrl);
			},
		},

		/** Deleting a bot deactivates it: its chats and history stay; its webhook, poller and webhook subscriptions stop. */
		remove: {
			rest: "DELETE /bots/:id",
			permission: "bots:write",
			timeout: 30_000,
			params: { $$strict: true, id: ID },
			async handler(this: BotsThis, ctx: GatewayContext<{ id: number }>) {
				const registration = this.registration();
				const found = await registration.db.models.Bot.findByPk(ctx.params.id);
				if (!found) throw fail.notFound("Bot");
				// The registration's lock: a deletion whose deleteWebhook landed after a new registration's
				// setWebhook left the bot active with no webhook at Telegram (and one meanwhile saw it inactive).
				await whileRegistering(registration.state, Number(found.telegram_id), () => deactivate(registration, ctx.params.id));
				respondWith(ctx, 204);
				return null;
			},
		},

		/** One reconciliation round now (REPL and operators): each active bot's Telegram webhook set as configured (bots/reconciler.ts). */
		reconcile: {
			visibility: "public",
			permission: "bots:write",
			timeout: 300_000,
			async handler(this: BotsThis) {
				const round = await this.reconcile(true);
				return round ?? { outcomes: {}, skipped: "another node is reconciling right now" };
			},
		},

		/** Telegram's view of a bot's webhook (REPL and operators). */
		webhookInfo: {
			permission: "bots:read",
			params: { id: ID },
			async handler(this: BotsThis, ctx: GatewayContext<{ id: number }>) {
				const bot = await this.runtime.db.models.Bot.findByPk(ctx.params.id);
				if (!bot) throw fail.notFound("Bot");
				const info = await this.runtime.telegram.getWebhookInfo(botToken(this.runtime.config.encryptionKeys, bot));
				// The URL holds the bot's webhook path: show whether it is ours, not the path itself.
				const expected = this.runtime.config.publicUrl ? webhookUrl(this.runtime.config.publicUrl, bot.webhook_path) : null;
				return {
					bot_id: bot.id,
					mode: bot.mode,
					webhook_set: info.url !== "",
					webhook_is_ours: expected !== null && info.url === expected,
					pending_update_count: info.pending_update_count,
					last_error_date: info.last_error_date ? iso(info.last_error_date * 1000) : null,
					last_error_message: info.last_error_message ?? null,
				};
			},
		},

		/** Queues an outgoing message (chats.send calls this after its ACL check). */
		enqueue: {
			visibility: "public",
			retryPolicy: { enabled: false },
			params: {
				chat_id: ID,
				text: { type: "string", min: 1, max: MAX_MARKUP_TEXT_LENGTH },
				parse_mode: { type: "enum", values: ["HTML", "Markdown", "MarkdownV2"], optional: true },
				reply_to_message_id: { type: "number", integer: true, positive: true, optional: true },
				disable_notification: { type: "boolean", optional: true },
				client_key: { type: "string", max: 128, optional: true },
				sent_by: { type: "string", max: 64 },
			},
			async handler(this: BotsThis, ctx: Context<EnqueueParams>) {
				const { db } = this.runtime;
				const result = await enqueueMessage(db, ctx.params, this.runtime.config.sendQueueLimits, (migration) => followChatMigration(db, this.broker, this.logger, migration));
				if (result.created) void this.senders.schedule([result.message.bot_id]);
				await this.broker.broadcast("outbound.kick", { bot_id: result.message.bot_id });
				return result.message;
			},
		},

		/** Re-seals every bot token, Telegram webhook secret and webhook signing secret under the active key (also `npm run cli -- bots rotate-key`). */
		rotateKeys: {
			visibility: "public",
			permission: "bots:write",
			async handler(this: BotsThis) {
				const result = await rotateEncryptionKeys(this.runtime.db, this.runtime.config.encryptionKeys);
				await this.broker.broadcast("bots.changed", {});
				return result;
			},
		},
	},

	events: {
		"outbound.kick"(this: BotsThis, ctx: Context<{ bot_id?: number }>) {
			void this.senders.schedule(ctx.params.bot_id ? [ctx.params.bot_id] : undefined);
		},

		/** A bot deleted (or not active) stops sending at once: its sender here, if any, is aborted, even in a 429 pause. */
		async "bots.changed"(this: BotsThis, ctx: Context<{ bot_id?: number }>) {
			await this.senders.stopIfInactive(ctx.params.bot_id);
		},
	},

	methods: {
		registration(this: BotsThis): RegistrationDeps {
			const { db, config, telegram, state } = this.runtime;
			return { db, config, telegram, state, logger: this.logger, broker: this.broker };
		},

		async kickSender(this: BotsThis, botId: number): Promise<void> {
			void this.senders.schedule([botId]);
			await this.broker.broadcast("outbound.kick", { bot_id: botId });
		},

		async reconcile(this: BotsThis, force: boolean): Promise<Round | null> {
			const { db, config, telegram, state } = this.runtime;
			if (!force && !(await roundIsDue(state).catch(() => false))) return null;
			let round: Round | null = null;
			const deps = {
				db,
				keys: config.encryptionKeys,
				telegram,
				state,
				logger: this.logger,
				publicUrl: config.publicUrl,
				modeChanged: (botId: number) => announce(this.broker, botId),
				tokenWorks: (botId: number) => this.kickSender(botId),
			};
			await this.leases.run("reconcile:bots", async (signal) => {
				round = await reconcileBots(deps, signal);
				await noteRound(state, config.telegramReconcileSeconds * 1000);
			});
			return round;
		},
	},

	created(this: BotsThis) {
		this.runtime = runtimeOf(this.broker);
		this.leases = new LeaseRunner(this.runtime.state, `${this.broker.nodeID}:${randomBytes(4).toString("hex")}`, { ttlMs: SENDER_LEASE_MS });
		const { db, config, telegram, state } = this.runtime;
		this.senders = new SenderScheduler({ db, config, telegram, state, logger: this.logger, leases: this.leases, broker: this.broker });
	},

	async started(this: BotsThis) {
		this.scanTimer = setInterval(() => void this.senders.schedule(), SENDER_SCAN_MS);
		this.scanTimer.unref();
		void this.senders.schedule();
		// At start (a changed PUBLIC_URL, a build that receives new update kinds), then whenever due.
		const reconcile = (force: boolean) =>
			void this.reconcile(force).catch((err: unknown) => this.logger.warn("Cannot reconcile the bots' Telegram settings:", (err as Error).message));
		reconcile(true);
		this.reconcileTimer = setInterval(() => reconcile(false), Math.min(RECONCILE_CHECK_MS, this.runtime.config.telegramReconcileSeconds * 1000));
		this.reconcileTimer.unref();
		metricsOf(this.broker).sample("send_queue_depth", this.name, () => this.runtime.db.models.OutboundQueueItem.count());
	},

	async stopped(this: BotsThis) {
		metricsOf(this.broker).withdraw("send_queue_depth", this.name);
		clearInterval(this.scanTimer);
		clearInterval(this.reconcileTimer);
		this.leases.abortAll();
		await this.senders.stopped();
	},
};

export default BotsService;
