/**
 * Telegram's flood limits, kept in the shared state so they hold across the cluster: about 30
 * messages per second per bot, one per second in any chat, and 20 per minute in a group. A 429 from
 * Telegram pauses the whole bot for its retry_after.
 */
import type { SharedState } from "../../lib/state";

export const FLOOD_LIMITS = {
	perBotPerSecond: 30,
	perChatPerSecond: 1,
	perGroupPerMinute: 20,
} as const;

/**
 * Windows are taken a little longer than Telegram's: a slot is taken here, but Telegram counts the
 * request when it arrives, and two sends can reach it closer together than they left.
 */
const WINDOW_MARGIN = { perSecondMs: 150, perMinuteMs: 1_000 } as const;

export type ChatKind = "private" | "group";

/** Milliseconds until the bot may send again after a 429 (0 when it may send now). */
export async function pausedFor(state: SharedState, botId: number): Promise<number> {
	const until = Number(await state.get(`flood:pause:${botId}`));
	return Number.isFinite(until) ? Math.max(0, until - Date.now()) : 0;
}

export async function pause(state: SharedState, botId: number, seconds: number): Promise<void> {
	const ms = Math.max(1, seconds) * 1000;
	await state.set(`flood:pause:${botId}`, String(Date.now() + ms), ms);
}

/**
 * Takes the slots one send needs, as "at most N in any window" (sliding windows, not buckets, which
 * would let a full bucket plus its refill through in one second). When a limit says wait, returns
 * how long. A refusal by a later limit leaves the earlier slots taken: the send only waits longer.
 */
export async function reserveSend(state: SharedState, botId: number, chatId: number, kind: ChatKind): Promise<number> {
	const chat = await state.takeSlot(`flood:chat:${botId}:${chatId}`, FLOOD_LIMITS.perChatPerSecond, 1_000 + WINDOW_MARGIN.perSecondMs);
	if (!chat.allowed) return chat.retryAfterMs;
	if (kind === "group") {
		const group = await state.takeSlot(`flood:group:${botId}:${chatId}`, FLOOD_LIMITS.perGroupPerMinute, 60_000 + WINDOW_MARGIN.perMinuteMs);
		if (!group.allowed) return group.retryAfterMs;
	}
	const bot = await state.takeSlot(`flood:bot:${botId}`, FLOOD_LIMITS.perBotPerSecond, 1_000 + WINDOW_MARGIN.perSecondMs);
	return bot.allowed ? 0 : bot.retryAfterMs;
}

/** 1 s, 2 s, 4 s ... at most a minute, with ±20 % jitter. */
export function retryDelayMs(attempt: number, random = Math.random): number {
	const base = Math.min(60_000, 1_000 * 2 ** Math.max(0, attempt - 1));
	return Math.round(base * (0.8 + 0.4 * random()));
}

export const MAX_SEND_ATTEMPTS = 8;
