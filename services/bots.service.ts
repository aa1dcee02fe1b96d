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
import { decodeCursor, pageParams, toPage } from "../lib/paging";
import { runtimeOf, type Runtime } from "../lib/runtime";
import { iso } from "../lib/time";
import { TelegramApiError, type TelegramUser } from "../lib/telegram/client";
import { publishEvents } from "./broker/publish";
import { enqueueMessage, type EnqueueParams } from "./bots/outbox";
import { queueStatsActions } from "./bots/queue-stats";
import { BOT_TOKEN, botToken, botView, identifyBot, newBotSecrets, telegramAsksToWait, WEBHOOK_MAX_CONNECTIONS, webhookUrl } from "./bots/registry";
import { rotateEncryptionKeys } from "./bots/key-rotation";
import { SendTimes } from "./bots/flood";
import type { KnownOutcome } from "./bots/known-outcomes";
import { MAX_MARKUP_TEXT_LENGTH } from "./bots/outbox";
import { drainBotQueue, type Settled } from "./bots/sender";
import { refuseSendWhileTokenRefused } from "./bots/token-refusal";
import { BOT_DELETED_REASON, replaceToken, reviveBotWebhooks } from "./bots/token-replacement";
import { noteRound, reconcileBots, roundIsDue, type Round } from "./bots/reconciler";
import { ID } from "../lib/validator";

const SENDER_LEASE_MS = 10_000;
const SENDER_SCAN_MS = 1_000;
/** Longer than POST /bots may take (its timeout): a registration that died lets go of its bot by then. */
const REGISTER_LEASE_MS = 35_000;
/** How often each node looks whether a reconciliation round is due (the round itself: TELEGRAM_RECONCILE_SECONDS). */
const RECONCILE_CHECK_MS = 60_000;

interface BotsLocalVars {
	runtime: Runtime;
	leases: LeaseRunner;
	senders: Set<Promise<boolean>>;
	/** Per bot, kept between drains: a queue emptied and filled again must not forget its last sends. */
	sendTimes: Map<number, SendTimes>;
	/** Outcomes settled on Telegram's side whose record is still to be written (sender.ts), by message id. */
	known: Map<number, KnownOutcome>;
	scanTimer?: NodeJS.Timeout;
	reconcileTimer?: NodeJS.Timeout;
}

interface BotsMethods {
	scheduleSenders(botIds?: number[]): Promise<void>;
	announce(botId: number): Promise<void>;
	register(ctx: GatewayContext<CreateParams>, token: string, me: TelegramUser): Promise<ReturnType<typeof botView>>;
	/** Tells Telegram where to push (webhook mode) or makes sure getUpdates may poll (polling mode). */
	connectTelegram(token: string, bot: { mode: string; webhook_path: string }, secret: string): Promise<void>;
	/** Turns a bot off: its webhooks, its Telegram webhook, its poller and sender (through bots.changed). */
	deactivate(botId: number): Promise<void>;
	/** Runs one round of the reconciler (services/bots/reconciler.ts) under the cluster's lease; null when another node holds it, or none is due. */
	reconcile(force: boolean): Promise<Round | null>;
	/** Runs `work` under the registration lock of the Telegram bot `telegramId` (409 while another holds it). */
	whileRegistering<T>(telegramId: number, work: () => Promise<T>): Promise<T>;
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
				const { token } = ctx.params;
				const me = await identifyBot(this.runtime.telegram, token);
				// One registration of a bot at a time: its row stays inactive until Telegram is set up,
				// and a second one meanwhile would replace the webhook secret under the first.
				return this.whileRegistering(me.id, () => this.register(ctx, token, me));
			},
		},

		list: {
			rest: "GET /bots",
			permission: "bots:read",
			params: { $$strict: true, ...pageParams, is_active: { type: "boolean", convert: true, optional: true } },
			async handler(this: BotsThis, ctx: GatewayContext<{ limit?: number; cursor?: string; is_active?: boolean }>) {
				const limit = ctx.params.limit ?? 50;
				const after = decodeCursor(ctx.params.cursor);
				const rows = await this.runtime.db.models.Bot.findAll({
					where: {
						...(after === null ? {} : { id: { [Op.gt]: after } }),
						...(ctx.params.is_active === undefined ? {} : { is_active: ctx.params.is_active }),
					},
					order: [["id", "ASC"]],
					limit: limit + 1,
				});
				return toPage(rows, limit, (b) => b.id, (b) => botView(b, this.runtime.config.publicUrl));
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
					bot = await this.whileRegistering(Number(found.telegram_id), async () => {
						// Read again under the lock: a deletion or registration may have just finished.
						const current = (await db.models.Bot.findByPk(found.id)) ?? found;
						const connect = (newToken: string, row: typeof current, secret: string) => this.connectTelegram(newToken, row, secret);
						await replaceToken({ db, keys: config.encryptionKeys, telegram, state, connect }, current, token);
						return current;
					});
					// Routes and the poller read the new token; the paused queue goes.
					await this.broker.broadcast("bots.changed", { bot_id: bot.id, token_replaced: true });
					void this.scheduleSenders([bot.id]);
					await this.broker.broadcast("outbound.kick", { bot_id: bot.id });
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
				const { db } = this.runtime;
				const found = await db.models.Bot.findByPk(ctx.params.id);
				if (!found) throw fail.notFound("Bot");
				// The registration's lock: a deletion whose deleteWebhook landed after a new registration's
				// setWebhook left the bot active with no webhook at Telegram (and one meanwhile saw it inactive).
				await this.whileRegistering(Number(found.telegram_id), () => this.deactivate(ctx.params.id));
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
				await refuseSendWhileTokenRefused(this.runtime.db, ctx.params.chat_id);
				const result = await enqueueMessage(this.runtime.db, ctx.params, this.runtime.config.sendQueueLimits);
				if (result.created) void this.scheduleSenders([result.message.bot_id]);
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
			void this.scheduleSenders(ctx.params.bot_id ? [ctx.params.bot_id] : undefined);
		},

		/** A bot deleted (or not active) stops sending at once: its sender here, if any, is aborted, even in a 429 pause. */
		async "bots.changed"(this: BotsThis, ctx: Context<{ bot_id?: number }>) {
			const botId = ctx.params.bot_id;
			const key = `sender:bot:${botId}`;
			if (!botId || !this.leases.isRunning(key)) return;
			const bot = await this.runtime.db.models.Bot.findByPk(botId, { attributes: ["is_active"], raw: true }).catch(() => undefined);
			// Unreadable: the sender's own check before its next send decides.
			if (bot === undefined) return;
			if (!bot?.is_active) this.leases.abort(key);
		},
	},

	methods: {
		async deactivate(this: BotsThis, botId: number): Promise<void> {
			const { db, config, telegram } = this.runtime;
			// Read again under the registration's lock: a registration may have just finished.
			const bot = await db.models.Bot.findByPk(botId);
			if (!bot?.is_active) return;
			await db.transaction(async (t) => {
				await bot.update({ is_active: false }, { transaction: t });
				await db.models.Webhook.update({ is_active: false, disabled_reason: BOT_DELETED_REASON }, { where: { bot_id: bot.id, is_active: true }, transaction: t });
			});
			if (bot.mode === "webhook") {
				try {
					await telegram.deleteWebhook(botToken(config.encryptionKeys, bot));
				} catch (err) {
					// The bot is off here either way: pushes for it now get 404.
					this.logger.warn(`Bot ${bot.id}: deleteWebhook failed (${(err as Error).message})`);
					await bot.update({ last_error: "deleteWebhook failed when the bot was deleted" });
				}
			}
			await this.announce(bot.id);
		},

		/** Stores the bot (inactive), sets up Telegram, then activates it; undone when Telegram refuses. */
		async register(this: BotsThis, ctx: GatewayContext<CreateParams>, token: string, me: TelegramUser) {
			const { db, config } = this.runtime;
			const { display_name, description } = ctx.params;
			const existing = await db.models.Bot.findOne({ where: { telegram_id: me.id } });
			if (existing?.is_active) {
				throw fail.conflict(`This bot (@${me.username ?? me.id}) is already registered as bot ${existing.id}; a new token for it goes to PATCH /bots/${existing.id} {token}`);
			}

			const secrets = newBotSecrets(config.encryptionKeys, token);
			const fields = {
				username: (me.username ?? String(me.id)).slice(0, 64),
				display_name: display_name ?? me.first_name.slice(0, 128),
				description: description ?? null,
				token_ciphertext: secrets.token_ciphertext,
				webhook_secret_ciphertext: secrets.webhook_secret_ciphertext,
				key_id: secrets.key_id,
				webhook_path: secrets.webhook_path,
				mode: config.publicUrl ? ("webhook" as const) : ("polling" as const),
				last_error: null,
			};
			// Stored inactive until Telegram has taken the webhook (or polling may start): a process
			// killed in between leaves a bot that is not registered, so registering it again works.
			// A bot registered before and deleted since comes back with its chats and history.
			const previous = existing?.get({ plain: true });
			const bot = existing
				? await existing.update({ ...fields, is_active: false, polling_offset: 0 })
				: await db.models.Bot.create({ ...fields, is_active: false, telegram_id: me.id, created_by_user_id: principalOf(ctx).user_id || null });
			try {
				await this.connectTelegram(token, bot, secrets.webhookSecret);
			} catch (err) {
				if (previous) await bot.update({ ...previous, is_active: false });
				else await bot.destroy();
				throw err;
			}
			await bot.update({ is_active: true });
			// Its deletion turned its webhook subscriptions off; its return turns them on again.
			if (previous && (await reviveBotWebhooks(db, bot.id)) > 0) await this.broker.broadcast("webhooks.changed", {});
			await this.announce(bot.id);
			respondCreated(ctx, `/bots/${bot.id}`);
			return botView(bot, config.publicUrl);
		},

		async connectTelegram(this: BotsThis, token, bot, secret) {
			const { telegram, config } = this.runtime;
			try {
				if (bot.mode === "webhook" && config.publicUrl) {
					await telegram.setWebhook(token, { url: webhookUrl(config.publicUrl, bot.webhook_path), secret_token: secret, max_connections: WEBHOOK_MAX_CONNECTIONS });
				} else {
					// A webhook left by an earlier owner would make every getUpdates fail with 409.
					await telegram.deleteWebhook(token);
				}
			} catch (err) {
				// JSON-quoted: Telegram's description is not ours, and a line break in it would forge a log line.
				this.logger.warn(`Telegram refused to set up the bot: ${JSON.stringify((err as Error).message)}`);
				// A refusal (4xx, e.g. "HTTPS url must be provided") will not go away by trying again.
				if (err instanceof TelegramApiError && err.errorCode === 429) throw telegramAsksToWait(err, "setWebhook");
				if (err instanceof TelegramApiError && err.errorCode >= 400 && err.errorCode < 500) {
					throw fail.badRequest(`Telegram refused the webhook setup: ${err.description}`, { telegram_error_code: err.errorCode });
				}
				throw fail.unavailable("Telegram (setWebhook)");
			}
		},

		async whileRegistering<T>(this: BotsThis, telegramId: number, work: () => Promise<T>): Promise<T> {
			const registering = `register:bot:${telegramId}`;
			const owner = randomBytes(8).toString("hex");
			if (!(await this.runtime.state.acquireLease(registering, owner, REGISTER_LEASE_MS))) {
				throw fail.conflict("This bot is being registered or changed by another request; try again");
			}
			try {
				return await work();
			} finally {
				await this.runtime.state.releaseLease(registering, owner).catch(() => undefined);
			}
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
				modeChanged: (botId: number) => this.announce(botId),
				tokenWorks: async (botId: number) => {
					void this.scheduleSenders([botId]);
					await this.broker.broadcast("outbound.kick", { bot_id: botId });
				},
			};
			await this.leases.run("reconcile:bots", async (signal) => {
				round = await reconcileBots(deps, signal);
				await noteRound(state, config.telegramReconcileSeconds * 1000);
			});
			return round;
		},

		async announce(this: BotsThis, botId: number) {
			await this.broker.broadcast("bots.changed", { bot_id: botId });
		},

		/** Takes the sender lease of every bot with due messages that no node is sending for. */
		async scheduleSenders(this: BotsThis, botIds?: number[]): Promise<void> {
			const { db } = this.runtime;
			let due: number[];
			try {
				due =
					botIds ??
					(
						await db.models.OutboundQueueItem.findAll({
							attributes: ["bot_id"],
							where: { next_attempt_at: { [Op.lte]: new Date() } },
							group: ["bot_id"],
							raw: true,
						})
					).map((r) => Number(r.bot_id));
			} catch (err) {
				this.logger.warn("Cannot scan the outbound queue:", (err as Error).message);
				return;
			}
			for (const botId of due) {
				const key = `sender:bot:${botId}`;
				if (this.leases.isRunning(key)) continue;
				let sendTimes = this.sendTimes.get(botId);
				if (!sendTimes) {
					sendTimes = new SendTimes();
					this.sendTimes.set(botId, sendTimes);
				}
				const deps = {
					db,
					sendTimes,
					known: this.known,
					keys: this.runtime.config.encryptionKeys,
					telegram: this.runtime.telegram,
					state: this.runtime.state,
					logger: this.logger,
					owner: this.leases.owner,
					settled: async (events: Parameters<typeof publishEvents>[1], settled: Settled[]) => {
						await publishEvents(this.broker, events);
						for (const item of settled) await this.broker.broadcast("outbound.settled", item);
					},
				};
				const running = this.leases.run(key, (signal) =>
					drainBotQueue(deps, botId, signal).catch((err: unknown) => {
						this.logger.warn(`Bot ${botId}: sender stopped (${(err as Error).message}); it resumes on the next scan`);
					}),
				);
				this.senders.add(running);
				void running.finally(() => this.senders.delete(running));
			}
		},
	},

	created(this: BotsThis) {
		this.runtime = runtimeOf(this.broker);
		this.leases = new LeaseRunner(this.runtime.state, `${this.broker.nodeID}:${randomBytes(4).toString("hex")}`, { ttlMs: SENDER_LEASE_MS });
		this.senders = new Set();
		this.sendTimes = new Map();
		this.known = new Map();
	},

	async started(this: BotsThis) {
		this.scanTimer = setInterval(() => void this.scheduleSenders(), SENDER_SCAN_MS);
		this.scanTimer.unref();
		void this.scheduleSenders();
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
		await Promise.allSettled([...this.senders]);
	},
};

export default BotsService;
