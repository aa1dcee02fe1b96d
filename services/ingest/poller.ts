/**
 * Long polling for a bot without a public webhook: getUpdates from the stored offset, store the
 * updates and the next offset in one transaction, repeat. Runs under the bot's poller lease, so the
 * cluster has one poller per bot; a node that takes over continues from the stored offset, which
 * is why nothing is lost or stored twice across a handover.
 */
import type { LoggerInstance } from "moleculer";
import { sleep } from "../../lib/async";
import type { EncryptionKey } from "../../lib/config";
import { MAX_JSON_DEPTH, sanitizeJson } from "../../lib/json";
import { unseal } from "../../lib/crypto";
import type { Database } from "../../lib/db/connection";
import { TelegramApiError, type TelegramClient } from "../../lib/telegram/client";
import { BOT_TOKEN_PURPOSE } from "./bot-routes";
import { normalizeUpdate } from "./normalize";
import type { IncomingUpdate, StoreOptions } from "./store";

export interface PollerDeps {
	db: Database;
	keys: EncryptionKey[];
	telegram: TelegramClient;
	/** Stores and publishes, in one transaction with the new offset. */
	store(items: IncomingUpdate[], options: StoreOptions): Promise<unknown>;
	logger: LoggerInstance;
	/** Seconds Telegram holds a getUpdates open when there is nothing new. */
	longPollSeconds: number;
}

export async function pollBot(deps: PollerDeps, botId: number, signal: AbortSignal): Promise<void> {
	const { db, telegram, logger } = deps;
	let backoffMs = 1_000;
	while (!signal.aborted) {
		const bot = await db.models.Bot.findByPk(botId, { raw: true }).catch(() => null);
		if (!bot) {
			await sleep(backoffMs, signal);
			continue;
		}
		if (!bot.is_active || bot.mode !== "polling") return;
		const token = unseal(deps.keys, BOT_TOKEN_PURPOSE, { ciphertext: bot.token_ciphertext, keyId: bot.key_id });
		try {
			const updates = await telegram.getUpdates(token, Number(bot.polling_offset), deps.longPollSeconds, signal);
			if (signal.aborted) return; // the lease is gone: another node polls from the stored offset
			backoffMs = 1_000;
			if (updates.length === 0) continue;
			const items: IncomingUpdate[] = [];
			let offset = Number(bot.polling_offset);
			for (const raw of updates) {
				// A null or an update without a numeric update_id cannot move the offset (nor stop the loop).
				const updateId = Number((raw as { update_id?: unknown } | null)?.update_id);
				if (Number.isSafeInteger(updateId)) offset = Math.max(offset, updateId + 1);
				// The same rule as a webhook body: no prototype keys kept, nothing nested absurdly deep.
				if (!sanitizeJson(raw, MAX_JSON_DEPTH)) {
					logger.warn(`Bot ${botId}: skipped an update Telegram sent nested deeper than ${MAX_JSON_DEPTH} levels`);
					continue;
				}
				try {
					items.push({ botId, update: normalizeUpdate(raw), raw: JSON.stringify(raw) });
				} catch (err) {
					logger.warn(`Bot ${botId}: skipped an update Telegram sent that cannot be read: ${(err as Error).message}`);
				}
			}
			await deps.store(items, { pollingOffset: { botId, offset } });
		} catch (err) {
			if (signal.aborted) return;
			if (err instanceof TelegramApiError && err.errorCode === 409) {
				logger.warn(`Bot ${botId}: getUpdates conflicts with a webhook or another poller; retrying in 5 s`);
				await sleep(5_000, signal);
			} else if (err instanceof TelegramApiError && (err.errorCode === 401 || err.errorCode === 404)) {
				logger.error(`Bot ${botId}: Telegram refuses its token; polling paused for a minute`);
				await db.models.Bot.update({ last_error: "Telegram refused the token (getUpdates)" }, { where: { id: botId } }).catch(() => undefined);
				await sleep(60_000, signal);
			} else {
				logger.warn(`Bot ${botId}: polling failed (${(err as Error).message}); retrying in ${backoffMs} ms`);
				await sleep(backoffMs, signal);
				backoffMs = Math.min(backoffMs * 2, 30_000);
			}
		}
	}
}
