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
import { markTokenRefused } from "../bots/token-refusal";
import { BOT_TOKEN_PURPOSE } from "./bot-routes";
import { readUpdate } from "./normalize";
import type { IncomingUpdate, StoreOptions } from "./store";

export interface PollerDeps {
	db: Database;
	keys: EncryptionKey[];
	telegram: TelegramClient;
	/** Stores and publishes, in one transaction with the new offset. */
	store(items: IncomingUpdate[], options: StoreOptions): Promise<unknown>;
	logger: LoggerInstance;
	/** Seconds Telegram holds a getUpdates open when there is nothing new (each poll within ±20% of it). */
	longPollSeconds: number;
}

/**
 * A long poll's timeout, spread ±20% around `seconds`: pollers started together (a node's start)
 * otherwise stayed in step, every bot's poll ending and its bot row read in the same second.
 */
export function jitteredPollSeconds(seconds: number, random = Math.random): number {
	return Math.max(1, Math.round(seconds * (0.8 + 0.4 * random())));
}

/** The longest a failing getUpdates is waited for before it is tried again. */
const MAX_BACKOFF_MS = 30_000;
/** The longest a 429's retry_after is obeyed for (as the sender caps it): an absurd one must not stop polling for good. */
const MAX_RETRY_AFTER_MS = 3_600_000;
/**
 * A 409 (a webhook set, or another getUpdates consumer with the bot's token) lasts until someone acts:
 * asked again from 5 s on, twice as late each time, at most every 5 minutes. Another consumer's
 * newer getUpdates ends ours anyway, so asking more often gains nothing.
 */
const CONFLICT_FIRST_BACKOFF_MS = 5_000;
const CONFLICT_MAX_BACKOFF_MS = 300_000;

export async function pollBot(deps: PollerDeps, botId: number, signal: AbortSignal): Promise<void> {
	const { db, telegram, logger } = deps;
	let backoffMs = 1_000;
	let conflictBackoffMs = CONFLICT_FIRST_BACKOFF_MS;
	/**
	 * The stored offset once a getUpdates sent with it has answered: every update below it is then
	 * confirmed, and asking without an offset returns the earliest unconfirmed one, whatever its id.
	 * After a week without updates Telegram numbers the next one at random, possibly below the
	 * offset: sent again, the offset would confirm (drop) such updates unseen.
	 */
	let confirmed: number | null = null;
	/** Waits the current backoff, and doubles it for the next failure. */
	const backOff = async (atLeastMs = 0) => {
		await sleep(Math.max(backoffMs, atLeastMs), signal);
		backoffMs = Math.min(backoffMs * 2, MAX_BACKOFF_MS);
	};
	while (!signal.aborted) {
		const bot = await db.models.Bot.findByPk(botId, { raw: true }).catch(() => null);
		if (!bot) {
			await sleep(backoffMs, signal);
			continue;
		}
		if (!bot.is_active || bot.mode !== "polling") return;
		let token: string;
		try {
			token = unseal(deps.keys, BOT_TOKEN_PURPOSE, { ciphertext: bot.token_ciphertext, keyId: bot.key_id });
		} catch (err) {
			// A key dropped from TOKEN_ENCRYPTION_KEYS too early, or a database restored without its keys:
			// this bot cannot poll until the key is back; the node and the other bots go on.
			const problem = `Cannot decrypt the bot's token: ${(err as Error).message}`;
			logger.error(`Bot ${botId}: ${problem}; polling paused for a minute`);
			await db.models.Bot.update({ last_error: problem }, { where: { id: botId } }).catch(() => undefined);
			await sleep(60_000, signal);
			continue;
		}
		try {
			const stored = Number(bot.polling_offset);
			const offset = confirmed === stored ? undefined : stored;
			const updates: unknown = await telegram.getUpdates(token, offset, jitteredPollSeconds(deps.longPollSeconds), signal);
			if (signal.aborted) return; // the lease is gone: another node polls from the stored offset
			if (!Array.isArray(updates)) throw new Error("getUpdates answered something other than a list of updates");
			confirmed = stored;
			conflictBackoffMs = CONFLICT_FIRST_BACKOFF_MS;
			if (updates.length > 0) {
				const { items, next } = readBatch(deps, botId, updates, stored, offset === undefined);
				if (items.length > 0 || next !== stored) await deps.store(items, { pollingOffset: { botId, offset: next, from: stored } });
				if (next === stored) confirmed = null;
			}
			// Polling works and what it brought is stored: whatever stopped it before (a conflict, a refused token, a key, a failing store) is over.
			if (bot.last_error !== null) await clearLastError(deps, botId, bot.last_error);
			if (updates.length > 0 && confirmed === null) {
				// Nothing to move past (no usable update_id, or only ones already behind the offset): asked
				// again at once, Telegram answers the same. Asked with the offset, what it held is confirmed.
				logger.warn(`Bot ${botId}: getUpdates answered ${updates.length} update(s) that do not move its offset; retrying in ${backoffMs} ms`);
				await backOff();
				continue;
			}
			backoffMs = 1_000;
		} catch (err) {
			if (signal.aborted) return;
			if (err instanceof TelegramApiError && err.errorCode === 409) {
				const cause = await conflictCause(deps, token, signal);
				// Switched to webhook mode meanwhile (the reconciler): that webhook is the gateway's own.
				const now = await db.models.Bot.findByPk(botId, { attributes: ["is_active", "mode"], raw: true }).catch(() => null);
				if (signal.aborted || (now && (!now.is_active || now.mode !== "polling"))) return;
				const problem = `getUpdates refused (409): ${cause}; polling is tried again after a growing pause (at most 5 min)`;
				// Said and written once per cause: the same conflict every few minutes is not news.
				if (bot.last_error !== problem) {
					logger.warn(`Bot ${botId}: ${problem}`);
					await db.models.Bot.update({ last_error: problem }, { where: { id: botId } }).catch(() => undefined);
				} else logger.debug(`Bot ${botId}: ${problem}; next try in ${conflictBackoffMs} ms`);
				await sleep(conflictBackoffMs, signal);
				conflictBackoffMs = Math.min(conflictBackoffMs * 2, CONFLICT_MAX_BACKOFF_MS);
			} else if (err instanceof TelegramApiError && (err.errorCode === 401 || err.errorCode === 404)) {
				const isNew = await markTokenRefused(db, botId).catch(() => false);
				if (isNew) logger.error(`Bot ${botId}: Telegram refuses its token; polling paused for a minute at a time until it gets the new one`);
				await sleep(60_000, signal);
			} else {
				// A 429 says how long to stay away: asking sooner only earns another 429.
				const retryAfter = err instanceof TelegramApiError && err.errorCode === 429 ? Number(err.retryAfterSeconds) : 0;
				const retryAfterMs = Number.isFinite(retryAfter) && retryAfter > 0 ? Math.min(retryAfter * 1000, MAX_RETRY_AFTER_MS) : 0;
				logger.warn(`Bot ${botId}: polling failed (${(err as Error).message}); retrying in ${Math.max(backoffMs, retryAfterMs)} ms`);
				// Said where operators look: an update the store refuses holds the bot's polling until it is stored.
				const problem = `Polling failed: ${String((err as Error).message).slice(0, 400)}; tried again after a growing pause (at most 30 s)`;
				if (bot.last_error !== problem) await db.models.Bot.update({ last_error: problem }, { where: { id: botId } }).catch(() => undefined);
				await backOff(retryAfterMs);
			}
		}
	}
}

/** Why getUpdates answered 409: getWebhookInfo names a webhook if one is set; otherwise another program polls with the token. */
async function conflictCause(deps: PollerDeps, token: string, signal: AbortSignal): Promise<string> {
	let url: string;
	try {
		url = (await deps.telegram.getWebhookInfo(token)).url;
	} catch {
		if (signal.aborted) return "";
		return "a webhook is set for the bot, or another program polls with its token (getWebhookInfo failed)";
	}
	if (!url) return "another program polls with the bot's token (getUpdates of another consumer)";
	let host = "an unreadable URL";
	try {
		host = new URL(url).host;
	} catch {
		// said as such
	}
	return `a webhook to ${host} was set for the bot outside the gateway`;
}

/** Clears the bot's last_error, unless it changed meanwhile (another problem, written since it was read). */
async function clearLastError(deps: PollerDeps, botId: number, seen: string): Promise<void> {
	await deps.db.models.Bot.update({ last_error: null }, { where: { id: botId, last_error: seen } }).catch(() => undefined);
}

/**
 * The updates of one getUpdates answer that can be stored, and the offset past every one with an
 * update_id. Asked without an offset (`renumbered` allowed), the answer holds only unconfirmed
 * updates: ids below the stored offset mean Telegram numbered them anew, and the offset follows them
 * down. Asked with one, nothing below it moves it.
 */
function readBatch(deps: PollerDeps, botId: number, updates: unknown[], stored: number, renumbered: boolean): { items: IncomingUpdate[]; next: number } {
	const items: IncomingUpdate[] = [];
	let highest = -1;
	for (const raw of updates) {
		// A null or an update without a numeric update_id cannot move the offset (nor stop the loop).
		const updateId = Number((raw as { update_id?: unknown } | null)?.update_id);
		if (Number.isSafeInteger(updateId) && updateId >= 0) highest = Math.max(highest, updateId);
		// The same rule as a webhook body: no prototype keys kept, nothing nested absurdly deep.
		if (!sanitizeJson(raw, MAX_JSON_DEPTH)) {
			deps.logger.warn(`Bot ${botId}: skipped an update Telegram sent nested deeper than ${MAX_JSON_DEPTH} levels`);
			continue;
		}
		try {
			items.push({ botId, ...readUpdate(raw) });
		} catch (err) {
			deps.logger.warn(`Bot ${botId}: skipped an update Telegram sent that cannot be read: ${(err as Error).message}`);
		}
	}
	if (highest < 0) return { items, next: stored };
	if (highest + 1 < stored && renumbered) {
		deps.logger.info(`Bot ${botId}: Telegram numbers its updates anew (update_id ${highest} below the offset ${stored}); polling follows`);
		return { items, next: highest + 1 };
	}
	return { items, next: Math.max(stored, highest + 1) };
}
