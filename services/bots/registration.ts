/**
 * A bot's registration with Telegram (POST /bots, a new token with PATCH /bots/:id, DELETE /bots/:id):
 * the bot is stored inactive, Telegram is set up (its webhook, or getUpdates allowed to poll), and only
 * then is the bot active; a deletion turns it off again. One registration of a Telegram bot at a time
 * in the whole cluster (whileRegistering: a lease in the shared state).
 */
import { randomBytes } from "node:crypto";
import type { LoggerInstance, ServiceBroker } from "moleculer";
import type { GatewayConfig } from "../../lib/config";
import type { Database } from "../../lib/db/connection";
import { fail } from "../../lib/errors";
import type { SharedState } from "../../lib/state";
import { TelegramApiError, type TelegramClient, type TelegramUser } from "../../lib/telegram/client";
import { botToken, botView, newBotSecrets, telegramAsksToWait, WEBHOOK_MAX_CONNECTIONS, webhookUrl } from "./registry";
import { BOT_DELETED_REASON, reviveBotWebhooks } from "./token-replacement";

/** Longer than POST /bots may take (its timeout): a registration that died lets go of its bot by then. */
const REGISTER_LEASE_MS = 35_000;

export interface RegistrationDeps {
	db: Database;
	config: Pick<GatewayConfig, "encryptionKeys" | "publicUrl" | "webhooksPerUserMax">;
	telegram: TelegramClient;
	state: SharedState;
	logger: LoggerInstance;
	/** Tells the cluster what changed: bots.changed (announce), webhooks.changed. */
	broker: Pick<ServiceBroker, "broadcast">;
}

/** What POST /bots says of the bot besides its token, and who registers it. */
export interface NewBot {
	display_name?: string;
	description?: string;
	created_by_user_id: number | null;
}

/** Runs `work` under the registration lock of the Telegram bot `telegramId` (409 while another holds it). */
export async function whileRegistering<T>(state: SharedState, telegramId: number, work: () => Promise<T>): Promise<T> {
	const registering = `register:bot:${telegramId}`;
	const owner = randomBytes(8).toString("hex");
	if (!(await state.acquireLease(registering, owner, REGISTER_LEASE_MS))) {
		throw fail.conflict("This bot is being registered or changed by another request; try again");
	}
	try {
		return await work();
	} finally {
		await state.releaseLease(registering, owner).catch(() => undefined);
	}
}

/** Stores the bot (inactive), sets up Telegram, then activates it; undone when Telegram refuses. */
export async function register(deps: RegistrationDeps, token: string, me: TelegramUser, newBot: NewBot): Promise<ReturnType<typeof botView>> {
	const { db, config } = deps;
	const { display_name, description } = newBot;
	const existing = await db.models.Bot.findOne({ where: { telegram_id: me.id } });
	if (existing?.is_active) {
		throw fail.conflict(`This bot (@${me.username ?? me.id}) is already registered as bot ${existing.id}; a new token for it goes to PATCH /bots/${existing.id} {token}`);
	}

	const secrets = newBotSecrets(config.encryptionKeys, token);
	const fields = {
		username: (me.username ?? String(me.id)).slice(0, 64),
		// A bot registered again keeps the name and description given to it before, unless new ones are.
		display_name: display_name ?? existing?.display_name ?? me.first_name.slice(0, 128),
		description: description ?? existing?.description ?? null,
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
		: await db.models.Bot.create({ ...fields, is_active: false, telegram_id: me.id, created_by_user_id: newBot.created_by_user_id });
	try {
		await connectTelegram(deps, token, bot, secrets.webhookSecret);
	} catch (err) {
		if (previous) await bot.update({ ...previous, is_active: false });
		else await bot.destroy();
		throw err;
	}
	await bot.update({ is_active: true });
	// Its deletion turned its webhook subscriptions off; its return turns them on again.
	if (previous && (await reviveBotWebhooks(db, bot.id, config.webhooksPerUserMax)) > 0) await deps.broker.broadcast("webhooks.changed", {});
	await announce(deps.broker, bot.id);
	return botView(bot, config.publicUrl);
}

/** Tells Telegram where to push (webhook mode) or makes sure getUpdates may poll (polling mode). */
export async function connectTelegram(
	deps: Pick<RegistrationDeps, "telegram" | "config" | "logger">,
	token: string,
	bot: { mode: string; webhook_path: string },
	secret: string,
): Promise<void> {
	const { telegram, config } = deps;
	try {
		if (bot.mode === "webhook" && config.publicUrl) {
			await telegram.setWebhook(token, { url: webhookUrl(config.publicUrl, bot.webhook_path), secret_token: secret, max_connections: WEBHOOK_MAX_CONNECTIONS });
		} else {
			// A webhook left by an earlier owner would make every getUpdates fail with 409.
			await telegram.deleteWebhook(token);
		}
	} catch (err) {
		// JSON-quoted: Telegram's description is not ours, and a line break in it would forge a log line.
		deps.logger.warn(`Telegram refused to set up the bot: ${JSON.stringify((err as Error).message)}`);
		// A refusal (4xx, e.g. "HTTPS url must be provided") will not go away by trying again.
		if (err instanceof TelegramApiError && err.errorCode === 429) throw telegramAsksToWait(err, "setWebhook");
		if (err instanceof TelegramApiError && err.errorCode >= 400 && err.errorCode < 500) {
			throw fail.badRequest(`Telegram refused the webhook setup: ${err.description}`, { telegram_error_code: err.errorCode });
		}
		throw fail.unavailable("Telegram (setWebhook)");
	}
}

/** Turns a bot off: its webhooks, its Telegram webhook, its poller and sender (through bots.changed). */
export async function deactivate(deps: RegistrationDeps, botId: number): Promise<void> {
	const { db, config, telegram } = deps;
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
			deps.logger.warn(`Bot ${bot.id}: deleteWebhook failed (${(err as Error).message})`);
			await bot.update({ last_error: "deleteWebhook failed when the bot was deleted" });
		}
	}
	await announce(deps.broker, bot.id);
}

/** bots.changed for one bot: routes and its poller read it again, and a bot turned off stops sending. */
export async function announce(broker: Pick<ServiceBroker, "broadcast">, botId: number): Promise<void> {
	await broker.broadcast("bots.changed", { bot_id: botId });
}
