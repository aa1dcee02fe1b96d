/**
 * Drains one bot's outbound queue, under the bot's sender lease (one sender per bot in the cluster):
 * messages go out in order per chat, inside the flood limits; each is recorded as sent (with
 * Telegram's message_id) or failed, with an `outgoing_message` event either way, in one transaction
 * with the removal of its queue row (send-records.ts), so a message leaves the queue exactly once.
 * Each row is also claimed in the database before it is sent (queue-claims.ts): two senders never
 * hold one row.
 *
 * A message is sent at most once: what a failed send means, and whether it is tried again, is
 * send-failure.ts (a 429 pauses the bot; a failure that cannot have reached Telegram is retried for a
 * while; one that may have reached it is never sent again). An outcome settled on Telegram's side
 * whose record cannot be written yet (the database away, the disk full) is kept (known-outcomes.ts),
 * in this process and in the shared state, and only the record is tried again, by whichever node
 * claims the row next. Recording an outcome, and acting on a failed send, is send-outcomes.ts.
 *
 * A deleted bot stops sending: its sender is aborted (bots.changed), and it looks again whether the
 * bot is active after every pause and, at most a second apart, before each send. A bot whose token
 * Telegram refuses (token-refusal.ts) sends nothing either: its queue waits for the new token.
 */
import { sleep } from "../../lib/async";
import type { EncryptionKey } from "../../lib/config";
import type { Database } from "../../lib/db/connection";
import { read } from "../../lib/db/raw";
import type { Bot, OutboundQueueItem } from "../../lib/db/models";
import { toDate } from "../../lib/time";
import type { TelegramClient, TelegramMessage } from "../../lib/telegram/client";
import { noteAnswered, reserveSend, type ChatKind, type SendTimes } from "./flood";
import { sharedOutcome, type KnownOutcome } from "./known-outcomes";
import { claimRow, heldElsewhereFor, whileClaimed } from "./queue-claims";
import { botToken } from "./registry";
import { failures } from "./send-failure";
import { handleFailure, recordFailed, recordOutcome, share, type RecordingDeps } from "./send-outcomes";
import { isTokenRefused } from "./token-refusal";

export interface SenderDeps extends RecordingDeps {
	keys: EncryptionKey[];
	telegram: TelegramClient;
	/** This bot's recent sends (flood.ts), kept by the caller between drains. */
	sendTimes: SendTimes;
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
/** How old the sender's view of whether its bot is active may be when a send starts. */
const ACTIVE_RECHECK_MS = 1_000;
/** How soon a chat whose outcome could not be looked up in the shared state is looked at again. */
const OUTCOME_LOOKUP_RETRY_MS = 1_000;

export async function drainBotQueue(deps: SenderDeps, botId: number, signal: AbortSignal): Promise<void> {
	const { db } = deps;
	// Plain statements here and below (lib/db/raw.ts): a sender starts for nearly every message of a
	// bot that sends now and then, and Sequelize's model reads cost more than the statements.
	const [bot] = await read<Pick<Bot, "is_active" | "last_error" | "token_ciphertext" | "key_id">>(db, "SELECT is_active, last_error, token_ciphertext, key_id FROM bots WHERE id = ?", [botId]);
	if (!bot) return;
	// Paused: a call per queued message would only earn a 401 each. A new token, or the reconciler
	// finding this one works again, clears it and kicks the sender.
	if (bot.is_active && isTokenRefused(bot)) return;
	const token = botToken(deps.keys, bot);
	// The row just read says whether the bot is active: the first pass needs no second read of it.
	const isActive = activeCheck(deps, botId, Boolean(bot.is_active));
	let activeJustRead = Boolean(bot.is_active);
	while (!signal.aborted) {
		if (!activeJustRead && !(await stillActive(deps, botId))) return;
		activeJustRead = false;
		const rows = await dueChatHeads(db, botId);
		if (rows.length === 0) return;
		const { sent, nextTry, tokenRefused } = await sendPass(deps, { botId, token, signal, isActive }, rows);
		if (signal.aborted || tokenRefused) return;
		if (sent === 0) await sleep(Math.min(Number.isFinite(nextTry) ? nextTry : 1_000, 1_000), signal);
	}
}

interface BotSending {
	botId: number;
	token: string;
	signal: AbortSignal;
	/** Whether the bot is active, as read at most `maxAgeMs` ago (0: read now). */
	isActive(maxAgeMs: number): Promise<boolean>;
}

function activeCheck(deps: SenderDeps, botId: number, readNow: boolean): BotSending["isActive"] {
	let readAt = Date.now();
	let active = readNow;
	return async (maxAgeMs) => {
		if (Date.now() - readAt >= maxAgeMs) {
			active = await isBotActive(deps.db, botId);
			readAt = Date.now();
		}
		return active;
	};
}

/**
 * The flood slots of a send to this chat: 0 when they are taken and it may go now, otherwise how
 * long the chat waits. A 429's pause holds the whole bot: slept through here, then asked again;
 * null when the sender stopped or the bot was deleted meanwhile.
 */
async function reserveAfterPause(deps: SenderDeps, bot: BotSending, chatId: number, kind: ChatKind): Promise<number | null> {
	for (;;) {
		const { waitMs, pausedMs } = await reserveSend(deps.state, bot.botId, chatId, kind);
		if (pausedMs === 0) return waitMs;
		await sleep(pausedMs, bot.signal);
		if (bot.signal.aborted || !(await bot.isActive(0))) return null;
	}
}

/**
 * One pass over the chats' first messages: each that the flood limits and the claims allow is sent,
 * up to SENDS_IN_FLIGHT at once. Returns how many went, and when a held-back chat may go next, once
 * every send it started has ended (and been recorded).
 */
async function sendPass(deps: SenderDeps, bot: BotSending, rows: OutboundQueueItem[]): Promise<{ sent: number; nextTry: number; tokenRefused: boolean }> {
	const { db, sendTimes } = deps;
	const { botId, token, signal } = bot;
	// A chat whose earlier message must wait (flood limits, or another sender holding it: a node
	// that lost its lease mid-send, or died) holds back its later ones: order per chat is kept.
	const heldBack = new Set<number>();
	let nextTry = Number.POSITIVE_INFINITY;
	let sent = 0;
	let tokenRefused = false;
	const sends = new SendPool(SENDS_IN_FLIGHT);
	try {
		for (const row of rows) {
			await sends.room();
			if (signal.aborted || tokenRefused) break;
			const chatId = Number(row.chat_telegram_id);
			if (heldBack.has(chatId)) continue;
			const heldElsewhere = heldElsewhereFor(row, deps.owner);
			if (heldElsewhere > 0) {
				heldBack.add(chatId);
				nextTry = Math.min(nextTry, heldElsewhere);
				continue;
			}
			const messageId = Number(row.message_id);
			/** Settled on Telegram's side already: only its record is missing, and no send is made. */
			const recordKnown = (outcome: KnownOutcome) => {
				sends.start(() => whileClaimed(db, deps.owner, messageId, () => recordOutcome(deps, botId, row, outcome)));
				sent += 1;
			};
			const known = deps.known.get(messageId);
			if (known) {
				// Settled in this process: no flood slot either.
				if (await claimRow(db, deps.owner, messageId)) recordKnown(known);
				else heldBack.add(chatId);
				continue;
			}
			// A bot deleted meanwhile (its sender is aborted, but that news can be lost) sends nothing more.
			if (signal.aborted || !(await bot.isActive(ACTIVE_RECHECK_MS))) break;
			// Real send times first: a slot taken while they say wait would be spent for nothing.
			const localWait = sendTimes.waitMs(chatId, row.chat_kind as ChatKind);
			const waitMs = localWait > 0 ? localWait : await reserveAfterPause(deps, bot, chatId, row.chat_kind as ChatKind);
			if (waitMs === null) break;
			if (waitMs > 0) {
				heldBack.add(chatId);
				nextTry = Math.min(nextTry, waitMs);
				continue;
			}
			if (!(await claimRow(db, deps.owner, messageId))) {
				heldBack.add(chatId);
				continue;
			}
			// Another node may have sent it (and given up on its record): then its outcome is recorded, not sent again.
			let settledElsewhere: KnownOutcome | null;
			try {
				settledElsewhere = await sharedOutcome(deps.state, messageId);
			} catch (err) {
				// The shared state cannot say whether Telegram has it: not sent now, the chat waits for a
				// later pass (the row stays queued, claimed by this sender for a few seconds at most).
				// That costs nothing a send would not have paid: in cluster mode the shared state is Redis,
				// whose loss also stops the flood reservations and the sender lease, and in embedded mode
				// it cannot fail. Sending anyway could deliver the message twice.
				deps.logger.warn(`Bot ${botId}: cannot tell whether message ${messageId} was sent already (${(err as Error).message}); it waits`);
				heldBack.add(chatId);
				nextTry = Math.min(nextTry, OUTCOME_LOOKUP_RETRY_MS);
				continue;
			}
			if (settledElsewhere) {
				deps.known.set(messageId, settledElsewhere);
				recordKnown(settledElsewhere);
				continue;
			}
			const kind = row.chat_kind as ChatKind;
			sendTimes.started(chatId);
			sends.start(() =>
				whileClaimed(db, deps.owner, messageId, () =>
					sendOne(deps, token, botId, row, signal, async () => {
						sendTimes.record(chatId);
						await noteAnswered(deps.state, botId, chatId, kind).catch((err: unknown) => {
							deps.logger.warn(`Bot ${botId}: cannot share when Telegram answered a send (${(err as Error).message}); other nodes pace from the reservation`);
						});
					}).then((refused) => {
						tokenRefused ||= refused;
					}),
				),
			);
			sent += 1;
		}
	} finally {
		await sends.settled();
	}
	return { sent, nextTry, tokenRefused };
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
	const rows = await read<OutboundQueueItem>(
		db,
		`SELECT q.* FROM outbound_queue q
		   JOIN (SELECT MIN(message_id) AS head FROM outbound_queue WHERE bot_id = ? GROUP BY chat_telegram_id) h ON q.message_id = h.head
		 WHERE q.next_attempt_at <= ? ORDER BY q.message_id LIMIT ?`,
		[botId, new Date(), BATCH],
	);
	// As the model reads them: numbers, and Dates (SQLite keeps times as text).
	return rows.map((row) => ({
		...row,
		message_id: Number(row.message_id),
		bot_id: Number(row.bot_id),
		chat_telegram_id: Number(row.chat_telegram_id),
		attempts: Number(row.attempts),
		next_attempt_at: toDate(row.next_attempt_at)!,
		lease_until: toDate(row.lease_until),
		created_at: toDate(row.created_at)!,
	}) as OutboundQueueItem);
}

async function isBotActive(db: Database, botId: number): Promise<boolean> {
	const [bot] = await read<{ is_active: number | boolean }>(db, "SELECT is_active FROM bots WHERE id = ?", [botId]);
	return Boolean(bot?.is_active);
}

/**
 * A deleted bot sends nothing more: what it still had queued fails ("bot deleted"), so its senders
 * learn it rather than waiting on a message that will never go.
 */
async function stillActive(deps: SenderDeps, botId: number): Promise<boolean> {
	if (await isBotActive(deps.db, botId)) return true;
	for (const row of await deps.db.models.OutboundQueueItem.findAll({ where: { bot_id: botId } })) {
		// Settled on Telegram's side, here or on another node: recorded as that. A shared state that cannot be read stops this until the next scan.
		const known = deps.known.get(Number(row.message_id)) ?? (await sharedOutcome(deps.state, Number(row.message_id)));
		if (known) await recordOutcome(deps, botId, row, known);
		else await recordFailed(deps, botId, row, failures.botDeleted());
	}
	return false;
}

/**
 * Sends one message and records the outcome; `answered` runs once Telegram answered (or did not).
 * Resolves true when Telegram refused the bot's token: the bot's queue pauses.
 */
async function sendOne(deps: SenderDeps, token: string, botId: number, row: OutboundQueueItem, signal: AbortSignal, answered: () => Promise<void>): Promise<boolean> {
	let message: TelegramMessage;
	try {
		// The lease lost while waiting for a connection: not sent, so the next holder sends it.
		message = await deps.telegram.sendMessage(token, JSON.parse(row.request) as Record<string, unknown>, { timeoutMs: SEND_TIMEOUT_MS, waitSignal: signal });
	} catch (err) {
		await answered();
		return handleFailure(deps, botId, row, err);
	}
	// Kept until recorded (settleKnown in send-outcomes.ts), its shared copy written while the answer is noted for pacing.
	const outcome = { sent: message };
	deps.known.set(Number(row.message_id), outcome);
	const [, shared] = await Promise.all([answered(), share(deps, botId, Number(row.message_id), outcome)]);
	await recordOutcome(deps, botId, row, outcome, shared);
	return false;
}

