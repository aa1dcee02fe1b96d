/**
 * Telegram's flood limits, kept in the shared state so they hold across the cluster: about 30
 * messages per second per bot, one per second in any chat, and 20 per minute in a group. A 429 from
 * Telegram pauses the whole bot for its retry_after. A send's pause check and slots are one trip to
 * the shared state, and so is noting its answer.
 *
 * A send is counted twice over: from when its slot was taken (reserveSend) and from when Telegram
 * answered it (noteAnswered), and a new slot is only taken once both counts allow it. Telegram counts
 * a request somewhere in between, so the answers are what bound it; they are in the shared state
 * because the sender lease can pass to another node between two sends of a chat (a node 700 ms from
 * Telegram handing over to one 5 ms away sent inside Telegram's second, counted from reservations alone).
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

const pauseKey = (botId: number) => `flood:pause:${botId}`;

/** Holds every send of the bot, on every node, for a 429's retry_after (the key's life is the pause). */
export async function pause(state: SharedState, botId: number, seconds: number): Promise<void> {
	const ms = Math.min(Math.max(1, seconds), MAX_RETRY_AFTER_SECONDS) * 1000;
	await state.set(pauseKey(botId), String(Date.now() + ms), ms);
}

const PER_SECOND_WINDOW_MS = 1_000 + WINDOW_MARGIN.perSecondMs;
const PER_MINUTE_WINDOW_MS = 60_000 + WINDOW_MARGIN.perMinuteMs;

/** When Telegram answered this chat's (and this bot's) latest sends: logs in the shared state. */
const answeredInChat = (botId: number, chatId: number) => `flood:answered:${botId}:${chatId}`;
const answeredByBot = (botId: number) => `flood:answered:${botId}`;

export interface Reservation {
	/** Milliseconds until this chat's send keeps every limit (0: its slots are taken, send now). */
	waitMs: number;
	/** Milliseconds the bot's 429 pause still holds; nothing was taken (0: not paused). */
	pausedMs: number;
}

/**
 * Takes the slots one send needs, as "at most N in any window" (sliding windows, not buckets, which
 * would let a full bucket plus its refill through in one second), each also counted from when
 * Telegram answered the sends before (noteAnswered, whichever node made them). All or none: a chat
 * refused by the bot's limit keeps its own slot for when the bot has room.
 */
export async function reserveSend(state: SharedState, botId: number, chatId: number, kind: ChatKind): Promise<Reservation> {
	const answered = answeredInChat(botId, chatId);
	const result = await state.takeSlots(
		[
			{ key: `flood:chat:${botId}:${chatId}`, limit: FLOOD_LIMITS.perChatPerSecond, windowMs: PER_SECOND_WINDOW_MS, log: answered },
			...(kind === "group" ? [{ key: `flood:group:${botId}:${chatId}`, limit: FLOOD_LIMITS.perGroupPerMinute, windowMs: PER_MINUTE_WINDOW_MS, log: answered }] : []),
			{ key: `flood:bot:${botId}`, limit: FLOOD_LIMITS.perBotPerSecond, windowMs: PER_SECOND_WINDOW_MS, log: answeredByBot(botId) },
		],
		pauseKey(botId),
	);
	return { waitMs: result.retryAfterMs, pausedMs: result.pausedMs };
}

/**
 * Telegram answered a send to this chat (or it failed): from now on, for every node, the chat's and
 * the bot's windows count it from this moment. Awaited before the send's outcome is recorded, so the
 * chat's next message (which only becomes due then) is reserved after it.
 */
export async function noteAnswered(state: SharedState, botId: number, chatId: number, kind: ChatKind): Promise<void> {
	await state.logMoments([
		kind === "group"
			? { key: answeredInChat(botId, chatId), keep: FLOOD_LIMITS.perGroupPerMinute, ttlMs: PER_MINUTE_WINDOW_MS }
			: { key: answeredInChat(botId, chatId), keep: FLOOD_LIMITS.perChatPerSecond, ttlMs: PER_SECOND_WINDOW_MS },
		{ key: answeredByBot(botId), keep: FLOOD_LIMITS.perBotPerSecond, ttlMs: PER_SECOND_WINDOW_MS },
	]);
}

/** The longest pause a 429's retry_after gets. */
export const MAX_RETRY_AFTER_SECONDS = 3_600;

/** How soon a chat (or a bot at its limit) whose sends are all still unanswered is looked at again. */
const IN_FLIGHT_RECHECK_MS = 100;

/** A chat quiet this long can no longer make a send wait (the per-minute group window and its margin). */
const QUIET_MS = 60_000 + WINDOW_MARGIN.perMinuteMs;
/** Below this many chats a bot's pacing keeps them all (no sweep needed). */
const SWEEP_ABOVE_CHATS = 1_000;

/**
 * The sends this sender made, counted from when Telegram answered them. The shared slots count from
 * when they were taken, and a send can reach Telegram well after (its claim waiting for the
 * database's writer, other sends of the bot in flight beside it): sends then arrive closer together
 * than the slots allowed. Telegram counts a request at some moment before its answer, so a window
 * counted from the answers always holds; a send still unanswered counts as happening now. Checked
 * before a slot is taken. This sender's own view: the answers also go to the shared state
 * (noteAnswered), which is what holds when the sender lease passes to another node.
 */
export class SendTimes {
	private readonly byChat = new Map<number, number[]>();
	private readonly byBot: number[] = [];
	private readonly unanswered = new Map<number, number>();
	private unansweredTotal = 0;
	private lastSweepAt = 0;

	/** Milliseconds until a send to this chat keeps every limit (0: now). */
	waitMs(chatId: number, kind: ChatKind, now = Date.now()): number {
		if ((this.unanswered.get(chatId) ?? 0) > 0) return IN_FLIGHT_RECHECK_MS;
		const chat = this.byChat.get(chatId) ?? [];
		let wait = 0;
		const last = chat[chat.length - 1];
		if (last !== undefined) wait = Math.max(wait, last + 1_000 + WINDOW_MARGIN.perSecondMs - now);
		if (kind === "group" && chat.length >= FLOOD_LIMITS.perGroupPerMinute) {
			wait = Math.max(wait, chat[chat.length - FLOOD_LIMITS.perGroupPerMinute]! + 60_000 + WINDOW_MARGIN.perMinuteMs - now);
		}
		// The bot's last 30 sends, unanswered ones included: the oldest answered among them must have left the window.
		const answeredInWindow = FLOOD_LIMITS.perBotPerSecond - this.unansweredTotal;
		if (answeredInWindow <= 0) wait = Math.max(wait, IN_FLIGHT_RECHECK_MS);
		else if (this.byBot.length >= answeredInWindow) {
			wait = Math.max(wait, this.byBot[this.byBot.length - answeredInWindow]! + 1_000 + WINDOW_MARGIN.perSecondMs - now);
		}
		return wait;
	}

	/** A send to this chat went out; record() it once answered (or failed). */
	started(chatId: number): void {
		this.unanswered.set(chatId, (this.unanswered.get(chatId) ?? 0) + 1);
		this.unansweredTotal += 1;
	}

	record(chatId: number, at = Date.now()): void {
		const unanswered = this.unanswered.get(chatId) ?? 0;
		if (unanswered > 0) {
			if (unanswered === 1) this.unanswered.delete(chatId);
			else this.unanswered.set(chatId, unanswered - 1);
			this.unansweredTotal -= 1;
		}
		const chat = this.byChat.get(chatId) ?? [];
		chat.push(at);
		if (chat.length > FLOOD_LIMITS.perGroupPerMinute) chat.shift();
		this.byChat.set(chatId, chat);
		this.byBot.push(at);
		if (this.byBot.length > FLOOD_LIMITS.perBotPerSecond) this.byBot.shift();
		// Swept once a minute past SWEEP_ABOVE_CHATS. Kept until the map passed 10,000 chats, a bot that
		// had written to 9,999 chats once held them all for as long as the node ran (a megabyte per
		// broadcasting bot, never given back).
		if (this.byChat.size > SWEEP_ABOVE_CHATS && at - this.lastSweepAt >= QUIET_MS) this.sweep(at);
	}

	/**
	 * Forgets the chats quiet for over a minute: they hold nothing that can still make a send wait.
	 * True when nothing at all is left (no chat, no send in flight or in the last minute).
	 */
	sweep(now = Date.now()): boolean {
		this.lastSweepAt = now;
		for (const [id, times] of this.byChat) if (times[times.length - 1]! < now - QUIET_MS) this.byChat.delete(id);
		const lastSend = this.byBot[this.byBot.length - 1];
		return this.byChat.size === 0 && this.unansweredTotal === 0 && (lastSend === undefined || lastSend < now - QUIET_MS);
	}

	/** Chats this bot's pacing still remembers (for tests and diagnostics). */
	get chatsRemembered(): number {
		return this.byChat.size;
	}
}
