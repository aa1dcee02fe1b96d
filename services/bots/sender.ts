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
 * Other 4xx answers (chat not found, bot blocked) fail the message at once. A message Telegram took
 * whose record cannot be written yet (the database away, the disk full) is never sent again: its
 * answer is kept, in this process (`accepted`) and, before its record is first tried, in the shared
 * state (`sent:<message id>`, for a day), and only the record is tried again. The shared copy is what
 * stops another node from sending it again once this one gave up on the record and its claim on the
 * row ran out: every node looks there after claiming a row and before sending it.
 */
import type { LoggerInstance } from "moleculer";
import { sleep } from "../../lib/async";
import type { EncryptionKey } from "../../lib/config";
import type { Database } from "../../lib/db/connection";
import { read } from "../../lib/db/raw";
import type { OutboundQueueItem } from "../../lib/db/models";
import { toApiError } from "../../lib/errors";
import type { SharedState } from "../../lib/state";
import { TelegramApiError, TelegramNetworkError, type TelegramClient, type TelegramMessage } from "../../lib/telegram/client";
import { allocateSeqs, insertEvents, type GatewayEvent } from "../broker/event-log";
import { messageView, type MessageRow } from "../chats/views";
import { MAX_RETRY_AFTER_SECONDS, MAX_SEND_ATTEMPTS, noteAnswered, pause, pausedFor, reserveSend, retryDelayMs, type ChatKind, type SendTimes } from "./flood";
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
	/** This bot's recent sends (flood.ts), kept by the caller between drains. */
	sendTimes: SendTimes;
	/**
	 * Telegram's answers to messages it took that are not recorded yet, by message id, kept by the
	 * caller between drains: such a row still queued is recorded, never sent again.
	 */
	accepted: Map<number, TelegramMessage>;
	/** Called after each commit: the events to publish and the messages that left the queue. */
	settled(events: GatewayEvent[], settled: Settled[]): Promise<void>;
}

/** Chats whose first message is looked at per pass. */
const BATCH = 200;
/**
 * Sends of one bot in flight at once, each to a different chat (a pass takes one message per chat):
 * one at a time, a round trip of 100 ms to Telegram held a bot to 10 messages/s, a third of what
 * Telegram allows. The flood limits are reserved before each send, so they hold all the same.
 */
const SENDS_IN_FLIGHT = 8;
const SEND_TIMEOUT_MS = 10_000;

/**
 * How long recording a message Telegram has already taken is tried again for, and the longest pause
 * between tries: a transaction that fails for a while (a deadlock, the database restarting) runs
 * again, because giving up leaves the message queued, to be sent a second time.
 */
const RECORD_DEADLINE_MS = 30_000;
const RECORD_MAX_PAUSE_MS = 5_000;

/**
 * How long Telegram's answer to a message it took is kept in the shared state for its record (by any
 * node): far longer than the database may be away; it is dropped as soon as the record is written.
 */
const ANSWER_KEEP_MS = 24 * 60 * 60_000;
/** How soon a chat whose answer could not be looked up in the shared state is looked at again. */
const ANSWER_LOOKUP_RETRY_MS = 1_000;

export async function drainBotQueue(deps: SenderDeps, botId: number, signal: AbortSignal): Promise<void> {
	const { db } = deps;
	const bot = await db.models.Bot.findByPk(botId, { raw: true });
	if (!bot) return;
	const token = botToken(deps.keys, bot);
	while (!signal.aborted) {
		if (!(await stillActive(deps, botId))) return;
		const rows = await dueChatHeads(db, botId);
		if (rows.length === 0) return;
		const { sent, nextTry } = await sendPass(deps, { botId, token, signal }, rows);
		if (signal.aborted) return;
		if (sent === 0) await sleep(Math.min(Number.isFinite(nextTry) ? nextTry : 1_000, 1_000), signal);
	}
}

interface BotSending {
	botId: number;
	token: string;
	signal: AbortSignal;
}

/**
 * One pass over the chats' first messages: each that the flood limits and the claims allow is sent,
 * up to SENDS_IN_FLIGHT at once. Returns how many went, and when a held-back chat may go next, once
 * every send it started has ended (and been recorded).
 */
async function sendPass(deps: SenderDeps, bot: BotSending, rows: OutboundQueueItem[]): Promise<{ sent: number; nextTry: number }> {
	const { db, sendTimes } = deps;
	const { botId, token, signal } = bot;
	// A chat whose earlier message must wait (flood limits, or another sender holding it: a node
	// that lost its lease mid-send, or died) holds back its later ones: order per chat is kept.
	const heldBack = new Set<number>();
	let nextTry = Number.POSITIVE_INFINITY;
	let sent = 0;
	const sends = new SendPool(SENDS_IN_FLIGHT);
	try {
		for (const row of rows) {
			await sends.room();
			if (signal.aborted) break;
			const chatId = Number(row.chat_telegram_id);
			if (heldBack.has(chatId)) continue;
			const heldElsewhere = heldElsewhereFor(row, deps.owner);
			if (heldElsewhere > 0) {
				heldBack.add(chatId);
				nextTry = Math.min(nextTry, heldElsewhere);
				continue;
			}
			const messageId = Number(row.message_id);
			/** Telegram has it already (`answer`): only its record is missing, and no second send is made. */
			const recordTaken = (answer: TelegramMessage) => {
				sends.start(() => whileClaimed(db, deps.owner, messageId, () => recordSent(deps, botId, row, answer)));
				sent += 1;
			};
			const answer = deps.accepted.get(messageId);
			if (answer) {
				// Taken by this process: no flood slot either.
				if (await claimRow(db, deps.owner, messageId)) recordTaken(answer);
				else heldBack.add(chatId);
				continue;
			}
			const paused = await pausedFor(deps.state, botId);
			if (paused > 0) await sleep(paused, signal);
			if (signal.aborted) break;
			// Real send times first: a slot taken while they say wait would be spent for nothing.
			const localWait = sendTimes.waitMs(chatId, row.chat_kind as ChatKind);
			const waitMs = localWait > 0 ? localWait : await reserveSend(deps.state, botId, chatId, row.chat_kind as ChatKind);
			if (waitMs > 0) {
				heldBack.add(chatId);
				nextTry = Math.min(nextTry, waitMs);
				continue;
			}
			if (!(await claimRow(db, deps.owner, messageId))) {
				heldBack.add(chatId);
				continue;
			}
			// Another node may have sent it (and given up on its record): then its answer is recorded, not sent again.
			let taken: TelegramMessage | null;
			try {
				taken = await sharedAnswer(deps, messageId);
			} catch (err) {
				// The shared state cannot say whether Telegram has it: not sent now, the chat waits for a
				// later pass (the row stays queued, claimed by this sender for a few seconds at most).
				// That costs nothing a send would not have paid: in cluster mode the shared state is Redis,
				// whose loss also stops the flood reservations and the sender lease, and in embedded mode
				// it cannot fail. Sending anyway could deliver the message twice.
				deps.logger.warn(`Bot ${botId}: cannot tell whether message ${messageId} was sent already (${(err as Error).message}); it waits`);
				heldBack.add(chatId);
				nextTry = Math.min(nextTry, ANSWER_LOOKUP_RETRY_MS);
				continue;
			}
			if (taken) {
				deps.accepted.set(messageId, taken);
				recordTaken(taken);
				continue;
			}
			const kind = row.chat_kind as ChatKind;
			sendTimes.started(chatId);
			sends.start(() =>
				whileClaimed(db, deps.owner, messageId, () =>
					sendOne(deps, token, botId, row, async () => {
						sendTimes.record(chatId);
						await noteAnswered(deps.state, botId, chatId, kind).catch((err: unknown) => {
							deps.logger.warn(`Bot ${botId}: cannot share when Telegram answered a send (${(err as Error).message}); other nodes pace from the reservation`);
						});
					}),
				),
			);
			sent += 1;
		}
	} finally {
		await sends.settled();
	}
	return { sent, nextTry };
}

/** Up to `size` sends at once; the first failure is thrown by settled(), once all have ended. */
class SendPool {
	private readonly running = new Set<Promise<void>>();
	private failure: { error: unknown } | null = null;

	constructor(private readonly size: number) {}

	start(send: () => Promise<void>): void {
		const running: Promise<void> = send()
			.catch((error: unknown) => {
				this.failure ??= { error };
			})
			.finally(() => this.running.delete(running));
		this.running.add(running);
	}

	/** Resolves once another send may start. */
	async room(): Promise<void> {
		while (this.running.size >= this.size) await Promise.race(this.running);
	}

	async settled(): Promise<void> {
		await Promise.all(this.running);
		if (this.failure) throw this.failure.error;
	}
}

/**
 * The first queued message of each chat, where it is due: a chat whose first message waits (a retry
 * after a 429, a 5xx, a timeout) holds its later ones back, so they never overtake it, and a chat with
 * a long backlog takes one place in the batch, not all of them, so other chats are not starved.
 */
async function dueChatHeads(db: Database, botId: number): Promise<OutboundQueueItem[]> {
	const heads = await read<{ message_id: number }>(
		db,
		`SELECT q.message_id FROM outbound_queue q
		   JOIN (SELECT MIN(message_id) AS head FROM outbound_queue WHERE bot_id = ? GROUP BY chat_telegram_id) h ON q.message_id = h.head
		 WHERE q.next_attempt_at <= ? ORDER BY q.message_id LIMIT ?`,
		[botId, new Date(), BATCH],
	);
	if (heads.length === 0) return [];
	return db.models.OutboundQueueItem.findAll({ where: { message_id: heads.map((h) => Number(h.message_id)) }, order: [["message_id", "ASC"]] });
}

/**
 * A deleted bot sends nothing more: what it still had queued fails ("bot deleted"), so its senders
 * learn it rather than waiting on a message that will never go.
 */
async function stillActive(deps: SenderDeps, botId: number): Promise<boolean> {
	const bot = await deps.db.models.Bot.findByPk(botId, { attributes: ["is_active"], raw: true });
	if (bot?.is_active) return true;
	for (const row of await deps.db.models.OutboundQueueItem.findAll({ where: { bot_id: botId } })) {
		// Taken by Telegram, here or on another node: sent, not failed. A shared state that cannot be read stops this until the next scan.
		const answer = deps.accepted.get(Number(row.message_id)) ?? (await sharedAnswer(deps, Number(row.message_id)));
		if (answer) await recordSent(deps, botId, row, answer);
		else await recordFailed(deps, row, "the bot was deleted before this message was sent");
	}
	return false;
}

/** Sends one message and records the outcome; `answered` runs once Telegram answered (or did not). */
async function sendOne(deps: SenderDeps, token: string, botId: number, row: OutboundQueueItem, answered: () => Promise<void>): Promise<void> {
	const messageId = Number(row.message_id);
	let message: TelegramMessage;
	try {
		message = await deps.telegram.sendMessage(token, JSON.parse(row.request) as Record<string, unknown>, { timeoutMs: SEND_TIMEOUT_MS });
	} catch (err) {
		await answered();
		await handleFailure(deps, botId, row, err);
		return;
	}
	// Kept until recorded: a record that fails for good leaves the row queued, to be recorded, not sent,
	// again: by this process (`accepted`), or by whichever node claims the row next (the shared state).
	deps.accepted.set(messageId, message);
	const [, shared] = await Promise.all([answered(), shareAnswer(deps, botId, messageId, message)]);
	await recordSent(deps, botId, row, message, shared);
}

const answerKey = (messageId: number) => `sent:${messageId}`;

/**
 * Keeps Telegram's answer where every node looks before sending; false when the shared state would
 * not take it. The message is out already, so nothing is held back then: the write is tried again
 * with each try of the record. Only if both stay away until the record's deadline is the answer in
 * this process alone, and another node could send the message again: the one case left.
 */
async function shareAnswer(deps: SenderDeps, botId: number, messageId: number, message: TelegramMessage): Promise<boolean> {
	try {
		await deps.state.set(answerKey(messageId), JSON.stringify(message ?? {}), ANSWER_KEEP_MS);
		return true;
	} catch (err) {
		deps.logger.warn(`Bot ${botId}: cannot keep Telegram's answer to message ${messageId} in the shared state yet (${(err as Error).message})`);
		return false;
	}
}

/** Telegram's answer to this message, kept by a try (on any node) whose record is still to be written; throws when the shared state cannot be read. */
async function sharedAnswer(deps: SenderDeps, messageId: number): Promise<TelegramMessage | null> {
	const kept = await deps.state.get(answerKey(messageId));
	if (kept === null) return null;
	try {
		const answer: unknown = JSON.parse(kept);
		// Telegram took it whatever the answer looks like: recordSentOnce reads only what has the right shape.
		return (answer && typeof answer === "object" ? answer : {}) as TelegramMessage;
	} catch {
		return {} as TelegramMessage;
	}
}

/** The record is written: the shared answer is not needed any more (it would expire on its own). */
async function forgetAnswer(deps: SenderDeps, messageId: number): Promise<void> {
	deps.accepted.delete(messageId);
	await deps.state.del(answerKey(messageId)).catch(() => undefined);
}

/** `shared`: whether the answer is in the shared state already; if not, it is tried again with each try of the record. */
async function recordSent(deps: SenderDeps, botId: number, row: OutboundQueueItem, sent: TelegramMessage, shared = true): Promise<void> {
	const messageId = Number(row.message_id);
	const deadline = Date.now() + RECORD_DEADLINE_MS;
	let events: GatewayEvent[];
	for (let pauseMs = 100; ; pauseMs = Math.min(pauseMs * 2, RECORD_MAX_PAUSE_MS)) {
		try {
			events = await recordSentOnce(deps, botId, row, sent);
			break;
		} catch (err) {
			if (!shared) shared = await shareAnswer(deps, botId, messageId, sent);
			if (toApiError(err).status !== 503) {
				// Telegram took it: sent again it would arrive twice. Recorded as sent without the details.
				deps.logger.error(`Bot ${botId}: message ${messageId} was sent but its record failed; it is marked sent without Telegram's details:`, (err as Error).message);
				await markSentBare(deps, row);
				await forgetAnswer(deps, messageId);
				return;
			}
			if (Date.now() + pauseMs > deadline) {
				deps.logger.error(`Bot ${botId}: message ${messageId} was sent but could not be recorded; it stays queued, to be recorded later:`, (err as Error).message);
				throw err;
			}
			deps.logger.warn(`Bot ${botId}: message ${messageId} was sent but could not be recorded yet (${(err as Error).message}); trying again`);
			await sleep(pauseMs);
		}
	}
	await forgetAnswer(deps, messageId);
	// Published once, after the commit: a failed publish must not run the transaction again.
	await deps.settled(events, [{ message_id: messageId, status: "sent" }]);
}

/** A message Telegram took whose full record failed: sent, its queue row gone, no event. */
async function markSentBare(deps: SenderDeps, row: OutboundQueueItem): Promise<void> {
	const messageId = Number(row.message_id);
	await deps.db.transaction(async (t) => {
		await deps.db.models.Message.update({ status: "sent", error: null }, { where: { id: messageId, status: "queued" }, transaction: t });
		await row.destroy({ transaction: t });
	});
	await deps.settled([], [{ message_id: messageId, status: "sent" }]);
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
		// Telegram's answer is read, never trusted: what has the wrong shape is left out.
		const answer: Partial<TelegramMessage> = sent && typeof sent === "object" ? sent : {};
		const from = answer.from && typeof answer.from === "object" && Number.isSafeInteger(answer.from.id) ? answer.from : null;
		message.set({
			seq,
			status: "sent",
			telegram_message_id: Number.isSafeInteger(answer.message_id) ? answer.message_id : null,
			date: typeof answer.date === "number" && Number.isFinite(answer.date) && Math.abs(answer.date) < 1e11 ? new Date(answer.date * 1000) : new Date(),
			...(typeof answer.text === "string" ? { text: answer.text } : {}),
			...(Array.isArray(answer.entities) ? { entities: JSON.stringify(answer.entities) } : {}),
			...(from ? { from_telegram_id: from.id, from_username: typeof from.username === "string" ? from.username : null, from_first_name: typeof from.first_name === "string" ? from.first_name : null, from_is_bot: true } : {}),
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
		// Capped: a timer cannot wait past ~24.8 days (it would fire at once), and an hour is plenty.
		const seconds = Math.min(Math.max(err.retryAfterSeconds ?? 1, 1), MAX_RETRY_AFTER_SECONDS);
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
	} else if (attempt < MAX_SEND_ATTEMPTS) {
		deps.logger.error(`Bot ${botId}: sending message ${row.message_id} failed unexpectedly:`, err);
		await retryLater(deps, row, retryDelayMs(attempt), "internal error");
	} else {
		deps.logger.error(`Bot ${botId}: sending message ${row.message_id} failed unexpectedly, giving up:`, err);
		await recordFailed(deps, row, `gave up after ${attempt} attempts: internal error`);
	}
}
