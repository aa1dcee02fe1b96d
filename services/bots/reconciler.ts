/**
 * Keeps Telegram's side of every active bot as the gateway configured it, long after registration:
 * PUBLIC_URL changed or removed, a webhook set by another tool, allowed_updates missing kinds this
 * build receives (ALL_UPDATE_KINDS), max_connections changed, a token revoked. One round looks at
 * one bot at a time (getWebhookInfo, then at most one setWebhook or deleteWebhook); it runs at start
 * and every TELEGRAM_RECONCILE_SECONDS on one node of the cluster (the bots service's lease).
 *
 * - Webhook mode, PUBLIC_URL set: a URL, allowed_updates or max_connections that differ are set
 *   again (same path and secret; pending updates are never dropped).
 * - Webhook mode, PUBLIC_URL unset now: the webhook is deleted (pending updates kept, getUpdates
 *   fetches them) and the bot switches to polling.
 * - Polling mode, PUBLIC_URL set now: the bot switches to webhook mode, as it would have been
 *   registered (PUBLIC_URL must be the same on every node, or two rounds would switch it back and forth).
 * - Polling mode, a webhook set outside the gateway (it makes every getUpdates fail with 409): deleted.
 *
 * What a round found is the bot's last_error (null once all is well; for a polling bot the poller owns
 * it otherwise). A refused token (401/404) is recorded (token-refusal.ts) and looked at again only after
 * REFUSED_RECHECK_MS; a 429 ends the round, and the next starts no sooner than Telegram asked.
 */
import type { LoggerInstance } from "moleculer";
import type { EncryptionKey } from "../../lib/config";
import type { Database } from "../../lib/db/connection";
import type { Bot } from "../../lib/db/models";
import type { SharedState } from "../../lib/state";
import { ALL_UPDATE_KINDS, safeDescription, TelegramApiError, type TelegramClient, type WebhookInfo } from "../../lib/telegram/client";
import { MAX_RETRY_AFTER_SECONDS } from "./flood";
import { botToken, botWebhookSecret, WEBHOOK_MAX_CONNECTIONS, webhookUrl } from "./registry";
import { clearTokenRefused, isTokenRefusal, isTokenRefused, markTokenRefused } from "./token-refusal";

/** A refused token is asked about again after this long (not every round): a revoked token stays revoked. */
export const REFUSED_RECHECK_MS = 60 * 60_000;
/** A push failure Telegram reports is the bot's problem while it is this recent. */
const RECENT_PUSH_FAILURE_S = 15 * 60;

export interface ReconcileDeps {
	db: Database;
	keys: EncryptionKey[];
	telegram: TelegramClient;
	state: SharedState;
	logger: LoggerInstance;
	publicUrl: string | null;
	/** The bot's mode changed: ingest starts or stops its poller, routes are read again. */
	modeChanged(botId: number): Promise<void>;
	/** The bot's token works again: its paused queue may go. */
	tokenWorks(botId: number): Promise<void>;
}

export type Outcome = "ok" | "fixed" | "to_polling" | "to_webhook" | "token_refused" | "skipped" | "failed";

export interface Round {
	outcomes: Record<number, Outcome>;
	/** Seconds Telegram asked to wait (a 429): the round stopped there. */
	retry_after?: number;
}

const PAUSE_KEY = "reconcile:paused";
const recheckKey = (botId: number) => `reconcile:refused:${botId}`;

class AskedToWait extends Error {
	constructor(readonly seconds: number) {
		super(`Telegram asks to wait ${seconds} s`);
	}
}

/** One round over every active bot, in id order, one at a time; stops early when `signal` aborts or Telegram answers 429. */
export async function reconcileBots(deps: ReconcileDeps, signal: AbortSignal): Promise<Round> {
	const round: Round = { outcomes: {} };
	const pausedUntil = Number(await deps.state.get(PAUSE_KEY));
	if (pausedUntil > Date.now()) return { ...round, retry_after: Math.ceil((pausedUntil - Date.now()) / 1000) };
	const bots = await deps.db.models.Bot.findAll({ where: { is_active: true }, order: [["id", "ASC"]] });
	for (const bot of bots) {
		if (signal.aborted) break;
		try {
			round.outcomes[bot.id] = await reconcileBot(deps, bot);
		} catch (err) {
			if (err instanceof AskedToWait) {
				await deps.state.set(PAUSE_KEY, String(Date.now() + err.seconds * 1000), err.seconds * 1000);
				deps.logger.warn(`Reconciling bots: Telegram asks to wait ${err.seconds} s; the rest waits for the next round`);
				return { ...round, retry_after: err.seconds };
			}
			round.outcomes[bot.id] = "failed";
			deps.logger.warn(`Bot ${bot.id}: cannot reconcile its Telegram settings (${(err as Error).message}); tried again next round`);
		}
	}
	return round;
}

/** What in Telegram's webhook differs from what the gateway sets (empty: nothing). */
export function webhookDrift(info: WebhookInfo, expectedUrl: string): Array<"url" | "allowed_updates" | "max_connections"> {
	const drift: Array<"url" | "allowed_updates" | "max_connections"> = [];
	if (info.url !== expectedUrl) drift.push("url");
	// Telegram sends only the kinds the list names: one missing is never received.
	const allowed = info.allowed_updates ?? [];
	if (ALL_UPDATE_KINDS.some((kind) => !allowed.includes(kind))) drift.push("allowed_updates");
	if (info.max_connections !== undefined && info.max_connections !== WEBHOOK_MAX_CONNECTIONS) drift.push("max_connections");
	return drift;
}

/** The host a URL names, for last_error and logs (never the path: a webhook path is a secret of sorts). */
function hostOf(url: string): string {
	try {
		return new URL(url).host;
	} catch {
		return "an unreadable URL";
	}
}

function pathOf(url: string): string | null {
	try {
		return new URL(url).pathname;
	} catch {
		return null;
	}
}

export async function reconcileBot(deps: ReconcileDeps, bot: Bot): Promise<Outcome> {
	const { db, telegram, publicUrl } = deps;
	if (isTokenRefused(bot) && (await deps.state.get(recheckKey(bot.id)))) return "skipped";
	const token = botToken(deps.keys, bot);
	const info = await ask(deps, bot, () => telegram.getWebhookInfo(token));
	if (info === null) return "token_refused";
	if (await clearTokenRefused(db, bot.id)) {
		deps.logger.info(`Bot ${bot.id}: Telegram takes its token again; its queue goes on`);
		if (isTokenRefused(bot)) bot.last_error = null;
		await deps.tokenWorks(bot.id);
	}

	if (bot.mode === "webhook" && !publicUrl) {
		// Pending updates stay with Telegram: the poller fetches them from the stored offset.
		if (info.url !== "") await ask(deps, bot, () => telegram.deleteWebhook(token));
		await bot.update({ mode: "polling", last_error: "PUBLIC_URL is not set: the bot's webhook was removed and it switched to polling" });
		deps.logger.warn(`Bot ${bot.id}: PUBLIC_URL is not set; switched from webhook to polling`);
		await deps.modeChanged(bot.id);
		return "to_polling";
	}
	if (bot.mode === "polling" && publicUrl) {
		// The poller stops first (bots.changed), so it does not take the webhook for someone else's.
		await bot.update({ mode: "webhook" });
		await deps.modeChanged(bot.id);
		try {
			await setOurWebhook(deps, bot, token);
		} catch (err) {
			await bot.update({ mode: "polling" });
			await deps.modeChanged(bot.id);
			throw err;
		}
		await bot.update({ last_error: null });
		deps.logger.info(`Bot ${bot.id}: PUBLIC_URL is set; switched from polling to webhook`);
		return "to_webhook";
	}
	if (bot.mode === "polling") {
		if (info.url === "") return "ok";
		await ask(deps, bot, () => telegram.deleteWebhook(token));
		await bot.update({ last_error: `A webhook to ${hostOf(info.url)} set outside the gateway stopped polling; it was removed` });
		deps.logger.warn(`Bot ${bot.id}: a webhook set outside the gateway (to ${hostOf(info.url)}) blocked polling; removed`);
		return "fixed";
	}

	const expected = webhookUrl(publicUrl!, bot.webhook_path);
	const drift = webhookDrift(info, expected);
	if (drift.length > 0) {
		await setOurWebhook(deps, bot, token);
		// The bot's own webhook path under another base URL is the gateway's previous PUBLIC_URL: the
		// operator's change, not another tool's (nothing to report in last_error).
		const ours = drift.includes("url") && pathOf(info.url) === pathOf(expected);
		const outside = drift.includes("url") && info.url !== "" && !ours ? ` (it pointed to ${hostOf(info.url)}, set outside the gateway)` : "";
		if (ours) deps.logger.info(`Bot ${bot.id}: its webhook pointed to ${hostOf(info.url)} (PUBLIC_URL changed since); set to ${hostOf(expected)}`);
		else deps.logger.warn(`Bot ${bot.id}: Telegram's webhook differed in ${drift.join(", ")}${outside}; set again`);
		await noteProblem(bot, outside ? `The webhook was changed outside the gateway${outside}; it was set back` : null);
		return "fixed";
	}
	const pushFailure =
		info.last_error_date !== undefined && info.last_error_date * 1000 > Date.now() - RECENT_PUSH_FAILURE_S * 1000
			? `Telegram cannot deliver to the webhook: ${safeDescription(info.last_error_message ?? "unknown error", token)}`
			: null;
	await noteProblem(bot, pushFailure);
	return "ok";
}

async function setOurWebhook(deps: ReconcileDeps, bot: Bot, token: string): Promise<void> {
	const secret = botWebhookSecret(deps.keys, bot);
	// setWebhook never drops pending updates unless asked to (drop_pending_updates is left out).
	await ask(deps, bot, () => deps.telegram.setWebhook(token, { url: webhookUrl(deps.publicUrl!, bot.webhook_path), secret_token: secret, max_connections: WEBHOOK_MAX_CONNECTIONS }));
}

/** A webhook bot's last_error is what the latest round found: written only when it changes. */
async function noteProblem(bot: Bot, problem: string | null): Promise<void> {
	if (bot.last_error !== problem) await bot.update({ last_error: problem });
}

/**
 * One Telegram call of a round: a refused token is recorded (null: nothing more for this bot until
 * REFUSED_RECHECK_MS), a 429 ends the round.
 */
async function ask<T>(deps: ReconcileDeps, bot: Bot, call: () => Promise<T>): Promise<T | null> {
	try {
		return await call();
	} catch (err) {
		if (isTokenRefusal(err)) {
			if (await markTokenRefused(deps.db, bot.id)) deps.logger.error(`Bot ${bot.id}: Telegram refuses its token (${err.message}); its sends are refused until it gets the new one`);
			await deps.state.set(recheckKey(bot.id), "1", REFUSED_RECHECK_MS);
			return null;
		}
		if (err instanceof TelegramApiError && err.errorCode === 429) {
			throw new AskedToWait(Math.min(Math.max(1, Math.ceil(err.retryAfterSeconds ?? 1)), MAX_RETRY_AFTER_SECONDS));
		}
		throw err;
	}
}

const LAST_ROUND_KEY = "reconcile:last-round";

/** Whether a periodic round is due: every node's timer asks, and the first to find no recent round runs one. */
export async function roundIsDue(state: SharedState): Promise<boolean> {
	return (await state.get(LAST_ROUND_KEY)) === null;
}

/** A round ran: the other nodes' timers skip theirs until most of the interval has passed. */
export async function noteRound(state: SharedState, intervalMs: number): Promise<void> {
	await state.set(LAST_ROUND_KEY, String(Date.now()), Math.floor(intervalMs * 0.9));
}

/** The bot has a new token: the next round asks Telegram about it at once. */
export async function forgetRefusalRecheck(state: SharedState, botId: number): Promise<void> {
	await state.del(recheckKey(botId)).catch(() => undefined);
}
