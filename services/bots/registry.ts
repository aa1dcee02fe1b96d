/** Registering bots: token checks, sealed secrets, webhook URLs, and the API shape of a bot. */
import { randomBytes } from "node:crypto";
import type { EncryptionKey } from "../../lib/config";
import { seal, unseal } from "../../lib/crypto";
import type { Bot } from "../../lib/db/models";
import { fail, GatewayError } from "../../lib/errors";
import { MAX_RETRY_AFTER_SECONDS } from "./flood";
import { TelegramApiError, TelegramNetworkError, type TelegramClient, type TelegramUser } from "../../lib/telegram/client";
import { iso } from "../../lib/time";
import { BOT_TOKEN_PURPOSE, WEBHOOK_SECRET_PURPOSE } from "../ingest/bot-routes";

/** Telegram's format: the bot's numeric id, a colon, then the secret part. */
export const BOT_TOKEN = /^\d{1,20}:[A-Za-z0-9_-]{20,100}$/;

/** max_connections of every bot's webhook (setWebhook at registration, and the reconciler). */
export const WEBHOOK_MAX_CONNECTIONS = 40;

export function webhookUrl(publicUrl: string, path: string): string {
	return `${publicUrl}/api/v1/telegram/webhook/${path}`;
}

export function botView(row: Bot, publicUrl: string | null) {
	return {
		id: Number(row.id),
		username: row.username,
		telegram_id: Number(row.telegram_id),
		display_name: row.display_name,
		description: row.description,
		mode: row.mode,
		// A deleted bot has no webhook any more (its DELETE removed it at Telegram).
		webhook_url: row.is_active && row.mode === "webhook" && publicUrl ? webhookUrl(publicUrl, row.webhook_path) : null,
		is_active: Boolean(row.is_active),
		last_error: row.last_error,
		created_at: iso(row.created_at),
		updated_at: iso(row.updated_at),
	};
}

/**
 * Asks Telegram who the token belongs to; a refused token is the caller's 400, naming `token`. An
 * answer without a usable bot in it (no numeric id, no first_name) is Telegram's fault, not the
 * caller's: 503, as when Telegram cannot be reached.
 */
export async function identifyBot(telegram: TelegramClient, token: string): Promise<TelegramUser> {
	let me: unknown;
	try {
		me = await telegram.getMe(token);
	} catch (err) {
		if (err instanceof TelegramApiError && err.errorCode === 429) throw telegramAsksToWait(err, "getMe");
		if (err instanceof TelegramApiError && err.errorCode < 500) {
			throw fail.validation([{ field: "token", message: `Telegram rejected this token (${err.errorCode} ${err.description})` }]);
		}
		if (err instanceof TelegramApiError || err instanceof TelegramNetworkError) throw fail.unavailable("Telegram");
		throw err;
	}
	const bot = usableBot(me);
	if (!bot) throw fail.unavailable("Telegram (getMe)");
	return bot;
}

/**
 * A 429 from Telegram: nothing wrong with the request, only too soon. 503 with Retry-After from
 * Telegram's retry_after (a 429 of getMe is not a rejected token).
 */
export function telegramAsksToWait(err: TelegramApiError, method: string): GatewayError {
	const seconds = Math.min(Math.max(1, Math.ceil(err.retryAfterSeconds ?? 1)), MAX_RETRY_AFTER_SECONDS);
	return new GatewayError("UNAVAILABLE", `Telegram (${method}) asks to wait ${seconds} s before trying again`, { retry_after: seconds });
}

/** Telegram's getMe answer, read rather than trusted: only the fields registration uses, checked. */
export function usableBot(me: unknown): TelegramUser | null {
	if (!me || typeof me !== "object") return null;
	const { id, is_bot, first_name, username } = me as Record<string, unknown>;
	if (typeof id !== "number" || !Number.isSafeInteger(id) || id <= 0) return null;
	if (typeof first_name !== "string" || first_name === "") return null;
	return { id, is_bot: is_bot === true, first_name, ...(typeof username === "string" && username !== "" ? { username } : {}) };
}

export interface BotSecrets {
	token_ciphertext: string;
	webhook_secret_ciphertext: string;
	key_id: string;
	webhook_path: string;
	webhookSecret: string;
}

/** A fresh webhook path and secret_token, and the token, sealed under the active key. */
export function newBotSecrets(keys: EncryptionKey[], token: string): BotSecrets {
	const webhookSecret = randomBytes(32).toString("hex");
	const sealedToken = seal(keys, BOT_TOKEN_PURPOSE, token);
	const sealedSecret = seal(keys, WEBHOOK_SECRET_PURPOSE, webhookSecret);
	return {
		token_ciphertext: sealedToken.ciphertext,
		webhook_secret_ciphertext: sealedSecret.ciphertext,
		key_id: sealedToken.keyId,
		webhook_path: randomBytes(32).toString("hex"),
		webhookSecret,
	};
}

export function botToken(keys: EncryptionKey[], row: Pick<Bot, "token_ciphertext" | "key_id">): string {
	return unseal(keys, BOT_TOKEN_PURPOSE, { ciphertext: row.token_ciphertext, keyId: row.key_id });
}

export function botWebhookSecret(keys: EncryptionKey[], row: Pick<Bot, "webhook_secret_ciphertext" | "key_id">): string {
	return unseal(keys, WEBHOOK_SECRET_PURPOSE, { ciphertext: row.webhook_secret_ciphertext, keyId: row.key_id });
}

/** Re-seals a bot's token and webhook secret under the active key (key rotation). */
export function resealBot(keys: EncryptionKey[], row: Pick<Bot, "token_ciphertext" | "webhook_secret_ciphertext" | "key_id">) {
	const token = seal(keys, BOT_TOKEN_PURPOSE, botToken(keys, row));
	const secret = seal(keys, WEBHOOK_SECRET_PURPOSE, botWebhookSecret(keys, row));
	return { token_ciphertext: token.ciphertext, webhook_secret_ciphertext: secret.ciphertext, key_id: token.keyId };
}
