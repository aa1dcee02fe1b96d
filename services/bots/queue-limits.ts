/**
 * How much may wait in the send queue. Telegram takes one message a second in a chat (20 a minute in
 * a group) and about 30 a second per bot, whatever a client sends: without a cap a client sending
 * faster grows the queue (and the delay of everyone else's messages through that bot) without end.
 * Past SEND_QUEUE_PER_CHAT or SEND_QUEUE_PER_BOT queued messages, a send is refused with 429 and a
 * Retry-After of about when the queue will have room again at Telegram's pace.
 */
import type { Transaction } from "sequelize";
import type { Database } from "../../lib/db/connection";
import { all, inIds } from "../../lib/db/raw";
import { GatewayError } from "../../lib/errors";
import { FLOOD_LIMITS, type ChatKind } from "./flood";

export interface SendQueueLimits {
	perChat: number;
	perBot: number;
}

export interface QueuedCounts {
	chat: number;
	bot: number;
}

/** Seconds the queue takes to send one message of a chat of this kind, or one of the bot's. */
export const DRAIN_SECONDS = {
	private: 1 / FLOOD_LIMITS.perChatPerSecond,
	group: 60 / FLOOD_LIMITS.perGroupPerMinute,
	bot: 1 / FLOOD_LIMITS.perBotPerSecond,
} as const;

/**
 * Messages waiting for Telegram, of several chats and bots at once (a batch of sends). A chat's:
 * queued, so without a seq (it comes when the message is sent or failed), at most the chat's cap,
 * found by the (chat_id, seq) index. A bot's: its rows of
 * the send queue, which holds nothing else, counted from the (bot_id, next_attempt_at) index alone
 * (counted from messages, each of up to 3,000 rows was read, inside SQLite's one writer).
 */
export async function queuedCounts(db: Database, t: Transaction, chatIds: readonly number[], botIds: readonly number[]): Promise<{ chat: Map<number, number>; bot: Map<number, number> }> {
	const chats = inIds(db, chatIds);
	const bots = inIds(db, botIds);
	const rows = await all<{ kind: "chat" | "bot"; id: number | string; n: number | string }>(
		db,
		t,
		`SELECT 'chat' AS kind, chat_id AS id, count(*) AS n FROM messages WHERE chat_id ${chats.sql} AND seq IS NULL AND status = 'queued' GROUP BY chat_id
		 UNION ALL
		 SELECT 'bot' AS kind, bot_id AS id, count(*) AS n FROM outbound_queue WHERE bot_id ${bots.sql} GROUP BY bot_id`,
		[...chats.values, ...bots.values],
	);
	const counts = { chat: new Map<number, number>(), bot: new Map<number, number>() };
	for (const row of rows) counts[row.kind].set(Number(row.id), Number(row.n));
	return counts;
}

/**
 * MySQL: the batch's bots' rows, locked until it commits (in id order, so two batches cannot
 * deadlock), so that queueing through a bot is counted one batch at a time across the nodes.
 * A chat's cap is covered too: its messages go through its bot. SQLite has one writer already.
 */
export async function lockBotQueues(db: Database, t: Transaction, botIds: readonly number[]): Promise<void> {
	if (db.dialect !== "mysql") return;
	const ids = inIds(db, [...botIds].sort((a, b) => a - b));
	await all(db, t, `SELECT id FROM bots WHERE id ${ids.sql} ORDER BY id FOR UPDATE`, ids.values);
}

/**
 * RATE_LIMITED when one more message would take the chat's or the bot's queue past its limit (the
 * longer wait when both are full), or null. Retry-After: until enough has drained at Telegram's pace
 * to make room for one more; an estimate (a flood pause from Telegram makes it longer).
 */
export function queueFullError(queued: QueuedCounts, limits: SendQueueLimits, chatKind: ChatKind): GatewayError | null {
	const refusals: Array<{ queue: "chat" | "bot"; limit: number; retryAfter: number; setting: string }> = [];
	if (queued.chat >= limits.perChat) {
		refusals.push({ queue: "chat", limit: limits.perChat, retryAfter: (queued.chat - limits.perChat + 1) * DRAIN_SECONDS[chatKind], setting: "SEND_QUEUE_PER_CHAT" });
	}
	if (queued.bot >= limits.perBot) {
		refusals.push({ queue: "bot", limit: limits.perBot, retryAfter: (queued.bot - limits.perBot + 1) * DRAIN_SECONDS.bot, setting: "SEND_QUEUE_PER_BOT" });
	}
	if (refusals.length === 0) return null;
	const longest = refusals.reduce((a, b) => (b.retryAfter > a.retryAfter ? b : a));
	const retryAfter = Math.max(1, Math.ceil(longest.retryAfter));
	const owner = longest.queue === "chat" ? "This chat" : "This chat's bot";
	return new GatewayError(
		"RATE_LIMITED",
		`${owner} has its limit of ${longest.limit} messages waiting to be sent (${longest.setting}), which Telegram takes at its own pace: retry after ${retryAfter} s`,
		{ queue: longest.queue, limit: longest.limit, retry_after: retryAfter },
	);
}
