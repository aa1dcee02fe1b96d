/**
 * A bot's new token (PATCH /bots/:id {token}), after a /revoke at BotFather: the same Telegram bot
 * keeps its gateway id, chats, history, queue, grants and webhook subscriptions. Only a token of the
 * same Telegram bot is taken (getMe says whose it is). Telegram is set up with it first (the same
 * webhook path and secret, so pushes on the way still match), and only then is it stored, sealed under
 * the active key, and the bot's refusal (token-refusal.ts) cleared.
 */
import type { EncryptionKey } from "../../lib/config";
import { seal } from "../../lib/crypto";
import type { Database } from "../../lib/db/connection";
import type { Bot } from "../../lib/db/models";
import { fail } from "../../lib/errors";
import type { SharedState } from "../../lib/state";
import type { TelegramClient } from "../../lib/telegram/client";
import { BOT_TOKEN_PURPOSE, WEBHOOK_SECRET_PURPOSE } from "../ingest/bot-routes";
import { disableWebhooksOfEndedKeys } from "../delivery/ended-owners";
import { owningUsersOf, WebhookLimitReached, withinWebhookLimit } from "../delivery/webhook-quota";
import { forgetRefusalRecheck } from "./reconciler";
import { botWebhookSecret, identifyBot } from "./registry";

export interface TokenReplacementDeps {
	db: Database;
	keys: EncryptionKey[];
	telegram: TelegramClient;
	state: SharedState;
	/** Tells Telegram where to push (webhook mode) or lets getUpdates poll, with the new token. */
	connect(token: string, bot: Bot, webhookSecret: string): Promise<void>;
}

export async function replaceToken(deps: TokenReplacementDeps, bot: Bot, token: string): Promise<void> {
	const me = await identifyBot(deps.telegram, token);
	if (me.id !== Number(bot.telegram_id)) {
		throw fail.validation([{ field: "token", message: `This token belongs to another Telegram bot (${me.id}), not to this one (${bot.telegram_id})` }]);
	}
	if (!bot.is_active) throw fail.conflict(`Bot ${bot.id} was deleted: register it again with POST /bots {token}`);
	const secret = botWebhookSecret(deps.keys, bot);
	await deps.connect(token, bot, secret);
	// Both under the active key: the row has one key_id for its token and its webhook secret.
	const sealedToken = seal(deps.keys, BOT_TOKEN_PURPOSE, token);
	const sealedSecret = seal(deps.keys, WEBHOOK_SECRET_PURPOSE, secret);
	await bot.update({ token_ciphertext: sealedToken.ciphertext, webhook_secret_ciphertext: sealedSecret.ciphertext, key_id: sealedToken.keyId, last_error: null });
	await forgetRefusalRecheck(deps.state, Number(bot.id));
}

/** Why a bot's deletion turned its webhook subscriptions off (their disabled_reason). */
export const BOT_DELETED_REASON = "bot deleted";

/** Why a webhook its bot's return did not switch on again. */
export const OVER_LIMIT_AT_RETURN_REASON = "its bot returned while its owner was at WEBHOOKS_PER_USER_MAX";

/**
 * A bot registered again after DELETE: the webhook subscriptions its deletion turned off are on
 * again, oldest first, each within its owning user's WEBHOOKS_PER_USER_MAX as if switched on by
 * hand (a user who made others meanwhile would otherwise pass the cap); those over it stay off,
 * saying why. Returns how many came back.
 */
export async function reviveBotWebhooks(db: Database, botId: number, perUserLimit: number): Promise<number> {
	const where = { bot_id: botId, is_active: false, disabled_reason: BOT_DELETED_REASON };
	const rows = await db.models.Webhook.findAll({ where, attributes: ["id", "owner_user_id", "owner_api_key_id"], order: [["id", "ASC"]], raw: true });
	const owners = await owningUsersOf(db, rows);
	let revived = 0;
	for (const row of rows) {
		try {
			await withinWebhookLimit(db, owners.get(row.id) ?? 0, perUserLimit, "is_active", async (t) => {
				const [changed] = await db.models.Webhook.update({ is_active: true, disabled_reason: null }, { where: { ...where, id: row.id }, transaction: t });
				revived += changed;
			});
		} catch (err) {
			if (!(err instanceof WebhookLimitReached)) throw err;
			await db.models.Webhook.update({ disabled_reason: OVER_LIMIT_AT_RETURN_REASON }, { where: { ...where, id: row.id } });
		}
	}
	// One whose API key ended while the bot was away would be on and silent: off again, saying why.
	if (revived > 0) await disableWebhooksOfEndedKeys(db);
	return revived;
}
