/**
 * Drains one bot's outbound queue, under the bot's sender lease (one sender per bot in the cluster):
 * messages go out in order per chat, inside the flood limits; each is recorded as sent (with
 * Telegram's message_id, an `outgoing_message` event) or failed in one transaction with the removal
 * of its queue row, so a message leaves the queue exactly once. Each row is also claimed in the
 * database before it is sent (queue-claims.ts): two senders never hold one row.
 *
 * Retries: a 429 pauses the bot for retry_after; 5xx answers and network failures are retried with
 * backoff, up to MAX_SEND_ATTEMPTS. A timeout after the request reached Telegram is ambiguous (it
 * may have been delivered); it is retried too, the only case where a message can arrive twice.
 * Other 4xx answers (chat not found, bot blocked) fail the message at once.
 */
import type { LoggerInstance } from "moleculer";
import { sleep } from "../../lib/async";
import { Op } from "sequelize";
import type { EncryptionKey } from "../../lib/config";
import type { Database } from "../../lib/db/connection";
import type { OutboundQueueItem } from "../../lib/db/models";
import { toApiError } from "../../lib/errors";
import type { SharedState } from "../../lib/state";
import { TelegramApiError, TelegramNetworkError, type TelegramClient, type TelegramMessage } from "../../lib/telegram/client";
import { allocateSeqs, insertEvents, type GatewayEvent } from "../broker/event-log";
import { messageView, type MessageRow } from "../chats/views";
import { MAX_SEND_ATTEMPTS, pause, pausedFor, reserveSend, retryDelayMs, type ChatKind } from "./flood";
import { claimRow, heldElsewhereFor, releaseRow, whileClaimed } from "./queue-claims";
import { botToken } from "./registry";

export interface Settled {
	message_id: number;
	status: "sent" | "failed";
	error?: string;
	telegram_error_code?: number;
}

export interface SenderDeps {
	db: Database;
	keys: EncryptionKey[];
	telegram: TelegramClient;
	state: SharedState;
	logger: LoggerInstance;
	/** Who claims queue rows: unique per sender process. */
	owner: string;
	/** Called after each commit: the events to publish and the messages that left the queue. */
	settled(events: GatewayEvent[], settled: Settled[]): Promise<void>;
}

const BATCH = 50;
const SEND_TIMEOUT_MS = 10_000;

/**
 * How long recording a message Telegram has already taken is tried again for, and the longest pause
 * between tries: a transaction that fails for a while (a deadlock, the database restarting) runs
 * again, because giving up leaves the message queued, to be sent a second time.
 */
const RECORD_DEADLINE_MS = 30_000;
const RECORD_MAX_PAUSE_MS = 5_000;

export async function drainBotQueue(deps: SenderDeps, botId: number, signal: AbortSignal): Promise<void> {
	const { db } = deps;
	const bot = await db.models.Bot.findByPk(botId, { raw: true });
	if (!bot) return;
	const token = botToken(deps.keys, bot);
	while (!signal.aborted) {
		const rows = await db.models.OutboundQueueItem.findAll({
			where: { bot_id: botId, next_attempt_at: { [Op.lte]: new Date() } },
			order: [["message_id", "ASC"]],
			limit: BATCH,
		});
		if (rows.length === 0) return;
		// A chat whose earlier message must wait (flood limits, or another sender holding it: a node
		// that lost its lease mid-send, or died) holds back its later ones: order per chat is kept.
		const heldBack = new Set<number>();
		let nextTry = Number.POSITIVE_INFINITY;
		let sent = 0;
		for (const row of rows) {
			if (signal.aborted) return;
			const chatId = Number(row.chat_telegram_id);
			if (heldBack.has(chatId)) continue;
			const heldElsewhere = heldElsewhereFor(row, deps.owner);
			if (heldElsewhere > 0) {
				heldBack.add(chatId);
				nextTry = Math.min(nextTry, heldElsewhere);
				continue;
			}
			const paused = await pausedFor(deps.state, botId);
			if (paused > 0) await sleep(paused, signal);
			if (signal.aborted) return;
			const waitMs = await reserveSend(deps.state, botId, chatId, row.chat_kind as ChatKind);
			if (waitMs > 0) {
				heldBack.add(chatId);
				nextTry = Math.min(nextTry, waitMs);
				continue;
			}
			if (!(await claimRow(db, deps.owner, Number(row.message_id)))) {
				heldBack.add(chatId);
				continue;
			}
			await whileClaimed(db, deps.owner, Number(row.message_id), () => sendOne(deps, token, botId, row));
			sent += 1;
		}
		if (sent === 0) await sleep(Math.min(Number.isFinite(nextTry) ? nextTry : 1_000, 1_000), signal);
	}
}

async function sendOne(deps: SenderDeps, token: string, botId: number, row: OutboundQueueItem): Promise<void> {
	const request = JSON.parse(row.request) as Record<string, unknown>;
	let message: TelegramMessage;
	try {
		message = await deps.telegram.sendMessage(token, request, { timeoutMs: SEND_TIMEOUT_MS });
	} catch (err) {
		await handleFailure(deps, botId, row, err);
		return;
	}
	await recordSent(deps, botId, row, message);
}

async function recordSent(deps: SenderDeps, botId: number, row: OutboundQueueItem, sent: TelegramMessage): Promise<void> {
	const messageId = Number(row.message_id);
	const deadline = Date.now() + RECORD_DEADLINE_MS;
	let events: GatewayEvent[];
	for (let pauseMs = 100; ; pauseMs = Math.min(pauseMs * 2, RECORD_MAX_PAUSE_MS)) {
		try {
			events = await recordSentOnce(deps, botId, row, sent);
			break;
		} catch (err) {
			if (toApiError(err).status !== 503 || Date.now() + pauseMs > deadline) {
				deps.logger.error(`Bot ${botId}: message ${messageId} was sent but could not be recorded; it stays queued and may be sent again:`, (err as Error).message);
				throw err;
			}
			deps.logger.warn(`Bot ${botId}: message ${messageId} was sent but could not be recorded yet (${(err as Error).message}); trying again`);
			await sleep(pauseMs);
		}
	}
	// Published once, after the commit: a failed publish must not run the transaction again.
	await deps.settled(events, [{ message_id: messageId, status: "sent" }]);
}

/** The message as sent, its outgoing_message event, and its queue row gone, in one transaction. */
function recordSentOnce(deps: SenderDeps, botId: number, row: OutboundQueueItem, sent: TelegramMessage): Promise<GatewayEvent[]> {
	const { db } = deps;
	const messageId = Number(row.message_id);
	return db.transaction(async (t) => {
		// A locking read: on MySQL a plain one would read a snapshot older than a try that committed
		// while this one waited, and record the message (and its event) a second time.
		const message = await db.models.Message.findByPk(messageId, { transaction: t, lock: t.LOCK.UPDATE });
		// Gone, or recorded already by a try whose COMMIT landed although its answer was lost.
		if (!message || message.status === "sent") {
			await row.destroy({ transaction: t });
			return [];
		}
		const chatId = Number(message.chat_id);
		const seq = await allocateSeqs(db, t, 1);
		message.set({
			seq,
			status: "sent",
			telegram_message_id: sent.message_id,
			date: new Date(sent.date * 1000),
			...(typeof sent.text === "string" ? { text: sent.text } : {}),
			...(Array.isArray(sent.entities) ? { entities: JSON.stringify(sent.entities) } : {}),
			...(sent.from ? { from_telegram_id: sent.from.id, from_username: sent.from.username ?? null, from_first_name: sent.from.first_name, from_is_bot: true } : {}),
			error: null,
		});
		await message.save({ transaction: t });
		const view = messageView(message.get({ plain: true }) as MessageRow);
		const [event] = await insertEvents(db, t, seq, [
			{
				type: "outgoing_message",
				bot_id: botId,
				chat_id: chatId,
				message_id: messageId,
				payload: () => ({ type: "outgoing_message", bot_id: botId, chat_id: chatId, message: view }),
			},
		]);
		await row.destroy({ transaction: t });
		return event ? [event] : [];
	});
}

async function recordFailed(deps: SenderDeps, row: OutboundQueueItem, error: string, telegramCode?: number): Promise<void> {
	const { db } = deps;
	const messageId = Number(row.message_id);
	const failed = await db.transaction(async (t) => {
		// Only a message still queued: one recorded as sent (by a try whose answer was lost) stays sent.
		const [changed] = await db.models.Message.update(
			{ status: "failed", error: error.slice(0, 1000) },
			{ where: { id: messageId, status: "queued" }, transaction: t },
		);
		await row.destroy({ transaction: t });
		return changed === 1;
	});
	if (!failed) return;
	await deps.settled([], [{ message_id: messageId, status: "failed", error, ...(telegramCode ? { telegram_error_code: telegramCode } : {}) }]);
}

function retryLater(deps: SenderDeps, row: OutboundQueueItem, delayMs: number, error: string): Promise<void> {
	return releaseRow(deps.db, deps.owner, Number(row.message_id), delayMs, { attempts: row.attempts + 1, last_error: error });
}

async function handleFailure(deps: SenderDeps, botId: number, row: OutboundQueueItem, err: unknown): Promise<void> {
	const attempt = row.attempts + 1;
	if (err instanceof TelegramApiError && err.errorCode === 429) {
		const seconds = err.retryAfterSeconds ?? 1;
		await pause(deps.state, botId, seconds);
		deps.logger.warn(`Bot ${botId}: Telegram asked to slow down for ${seconds} s; its queue is paused`);
		// Telegram refused it: not an attempt that counts towards giving up.
		await releaseRow(deps.db, deps.owner, Number(row.message_id), seconds * 1000, { last_error: err.message });
		return;
	}
	const retryable = err instanceof TelegramNetworkError || (err instanceof TelegramApiError && err.errorCode >= 500);
	if (retryable && attempt < MAX_SEND_ATTEMPTS) {
		await retryLater(deps, row, retryDelayMs(attempt), (err as Error).message);
		return;
	}
	if (err instanceof TelegramApiError) {
		await recordFailed(deps, row, err.description, err.errorCode);
	} else if (retryable) {
		await recordFailed(deps, row, `gave up after ${attempt} attempts: ${(err as Error).message}`);
	} else {
		deps.logger.error(`Bot ${botId}: sending message ${row.message_id} failed unexpectedly:`, err);
		await retryLater(deps, row, retryDelayMs(attempt), "internal error");
	}
}
