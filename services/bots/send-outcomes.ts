/**
 * What becomes of a message once its send is over (or once the sender finds its outcome settled
 * already): its record, written with the removal of its queue row (send-records.ts), and, for a
 * failed send, what send-failure.ts says follows: a 429 pauses the bot, a failure that cannot have
 * reached Telegram is retried, one that may have reached it is never sent again. An outcome settled on
 * Telegram's side whose record cannot be written yet is kept (known-outcomes.ts), in this process and
 * in the shared state, and only the record is tried again.
 */
import type { LoggerInstance } from "moleculer";
import { Op } from "sequelize";
import { sleep } from "../../lib/async";
import type { Database } from "../../lib/db/connection";
import type { OutboundQueueItem } from "../../lib/db/models";
import { isDuplicateKey, toApiError } from "../../lib/errors";
import type { SharedState } from "../../lib/state";
import { TelegramApiError, TelegramNetworkError } from "../../lib/telegram/client";
import type { GatewayEvent } from "../broker/event-log";
import type { MessageView } from "../chats/views";
import type { ChatMigration } from "../ingest/chat-migration";
import { pause } from "./flood";
import { forgetOutcome, shareOutcome, type KnownOutcome } from "./known-outcomes";
import { heldElsewhereFor, releaseRow } from "./queue-claims";
import { afterFailedSend, failures, type SendFailure } from "./send-failure";
import { markTokenRefused } from "./token-refusal";
import { noteChatMigration, writeFailed, writeSent, writeSentBare } from "./send-records";

/** A message that left the queue (outbound.settled): its record says the rest. */
export interface Settled {
	message_id: number;
	status: "sent" | "failed";
	/** The message as recorded, when its record came with an event (so a waiting send need not read it again). */
	message?: MessageView;
}

/** What recording an outcome needs; a sender (sender.ts) has it all. */
export interface RecordingDeps {
	db: Database;
	state: SharedState;
	logger: LoggerInstance;
	/** Who claims queue rows: unique per sender process. */
	owner: string;
	/**
	 * Outcomes settled on Telegram's side that are not recorded yet, by message id, kept by the caller
	 * between drains: such a row still queued is recorded, never sent (again).
	 */
	known: Map<number, KnownOutcome>;
	/** Called after each commit: the events to publish and the messages that left the queue. */
	settled(events: GatewayEvent[], settled: Settled[]): Promise<void>;
	/** Telegram said a group became a supergroup the bot has seen: its grants follow (ingest/chat-migration.ts). */
	chatMigrated?(migration: ChatMigration): Promise<void>;
}

/**
 * How long recording an outcome settled on Telegram's side is tried again for, and the longest pause
 * between tries: a transaction that fails for a while (a deadlock, the database restarting) runs
 * again, because giving up leaves the message queued (its outcome kept, to be recorded later).
 */
const RECORD_DEADLINE_MS = 30_000;
const RECORD_MAX_PAUSE_MS = 5_000;

/**
 * An outcome after which the message is never sent again: kept here and in the shared state until its
 * record is written, by this process or by whichever node claims the row next. The shared copy is
 * written before the record is first tried; if the shared state will not take it, it is tried again
 * with each try of the record, and only if both stay away is the outcome in this process alone.
 */
async function settleKnown(deps: RecordingDeps, botId: number, row: OutboundQueueItem, outcome: KnownOutcome): Promise<void> {
	const messageId = Number(row.message_id);
	deps.known.set(messageId, outcome);
	const shared = await share(deps, botId, messageId, outcome);
	await recordOutcome(deps, botId, row, outcome, shared);
}

/** Keeps the outcome in the shared state too; false (logged) when the shared state will not take it now. */
export async function share(deps: RecordingDeps, botId: number, messageId: number, outcome: KnownOutcome): Promise<boolean> {
	try {
		await shareOutcome(deps.state, messageId, outcome);
		return true;
	} catch (err) {
		deps.logger.warn(`Bot ${botId}: cannot keep the outcome of message ${messageId} in the shared state yet (${(err as Error).message})`);
		return false;
	}
}

/** The record is written: the kept outcome is not needed any more (the shared one would expire on its own). */
async function forget(deps: RecordingDeps, messageId: number): Promise<void> {
	deps.known.delete(messageId);
	await forgetOutcome(deps.state, messageId);
}

/** `shared`: whether the outcome is in the shared state already; if not, it is tried again with each try of the record. */
export async function recordOutcome(deps: RecordingDeps, botId: number, row: OutboundQueueItem, outcome: KnownOutcome, shared = true): Promise<void> {
	const messageId = Number(row.message_id);
	const deadline = Date.now() + RECORD_DEADLINE_MS;
	let events: GatewayEvent[] | null;
	for (let pauseMs = 100; ; pauseMs = Math.min(pauseMs * 2, RECORD_MAX_PAUSE_MS)) {
		try {
			events = "sent" in outcome ? await writeSent(deps.db, row, outcome.sent) : await writeFailed(deps.db, row, outcome.failed);
			break;
		} catch (err) {
			if (!shared) shared = await share(deps, botId, messageId, outcome);
			if (toApiError(err).status !== 503) {
				// A failure's record is tried again on a later pass (the outcome is kept): never a send.
				if ("failed" in outcome) throw err;
				// Telegram's message id is held by another row of the chat (an update that carried the same
				// message, say): recorded without it, still with its seq and event, so history and
				// subscribers have it.
				if (isDuplicateKey(err)) {
					deps.logger.error(`Bot ${botId}: message ${messageId} was sent, but another stored message of its chat has Telegram's message id; it is recorded without it:`, (err as Error).message);
					// NaN is no message id: the record leaves telegram_message_id empty (send-records.ts reads the answer untrusted).
					const recorded = await writeSent(deps.db, row, { ...outcome.sent, message_id: Number.NaN }).catch(() => null);
					if (recorded !== null) {
						events = recorded;
						break;
					}
				}
				// Telegram took it: sent again it would arrive twice. Recorded as sent without the details.
				deps.logger.error(`Bot ${botId}: message ${messageId} was sent but its record failed; it is marked sent without Telegram's details:`, (err as Error).message);
				await writeSentBare(deps.db, row);
				await forget(deps, messageId);
				await deps.settled([], [{ message_id: messageId, status: "sent" }]);
				return;
			}
			if (Date.now() + pauseMs > deadline) {
				deps.logger.error(`Bot ${botId}: the outcome of message ${messageId} could not be recorded; it stays queued, to be recorded later:`, (err as Error).message);
				throw err;
			}
			deps.logger.warn(`Bot ${botId}: the outcome of message ${messageId} could not be recorded yet (${(err as Error).message}); trying again`);
			await sleep(pauseMs);
		}
	}
	await forget(deps, messageId);
	// Published once, after the commit: a failed publish must not run the transaction again. A failure
	// already recorded (null) was published by whoever recorded it.
	if ("sent" in outcome) await deps.settled(events ?? [], [{ message_id: messageId, status: "sent" }]);
	else if (events) await deps.settled(events, [{ message_id: messageId, status: "failed" }]);
}

/** Records the message's final failure (send-failure.ts says which) with its seq and outgoing_message event. */
export async function recordFailed(deps: RecordingDeps, botId: number, row: OutboundQueueItem, failure: SendFailure): Promise<void> {
	const events = await writeFailed(deps.db, row, failure);
	if (events) await deps.settled(events, [{ message_id: Number(row.message_id), status: "failed" }]);
	else deps.logger.debug(`Bot ${botId}: message ${row.message_id} was settled already`);
}

/** Resolves true when the failure was Telegram refusing the bot's token. */
export async function handleFailure(deps: RecordingDeps, botId: number, row: OutboundQueueItem, err: unknown): Promise<boolean> {
	const messageId = Number(row.message_id);
	const attempt = row.attempts + 1;
	const queuedAt = new Date(row.created_at).getTime();
	const step = afterFailedSend(err, { attempt, queuedAt: Number.isFinite(queuedAt) ? queuedAt : Date.now(), now: Date.now() });
	if (!(err instanceof TelegramApiError || err instanceof TelegramNetworkError)) {
		deps.logger.error(`Bot ${botId}: sending message ${messageId} failed unexpectedly${step.kind === "fail" ? ", giving up" : ""}:`, err);
	}
	if (step.kind === "pause") {
		await pause(deps.state, botId, step.seconds);
		deps.logger.warn(`Bot ${botId}: Telegram asked to slow down for ${step.seconds} s; its queue is paused`);
		// Telegram refused it: not an attempt that counts towards giving up.
		await releaseRow(deps.db, deps.owner, messageId, step.seconds * 1000, { last_error: step.note });
	} else if (step.kind === "retry") {
		await releaseRow(deps.db, deps.owner, messageId, step.delayMs, { attempts: attempt, last_error: step.note });
	} else if (step.failure.details.may_have_been_delivered) {
		deps.logger.warn(`Bot ${botId}: message ${messageId} may have been delivered (${(err as Error).message}); it fails, and is not sent again`);
		await settleKnown(deps, botId, row, { failed: step.failure });
	} else if (step.failure.details.migrate_to_chat_id !== undefined) {
		await failMigratedChat(deps, botId, row, step.failure.details.migrate_to_chat_id, step.failure.details.telegram_error_code);
	} else if (step.failure.details.bot_token_refused) {
		// Recorded first: the bot's later sends are refused at once from then on, and its queue waits.
		if (await markTokenRefused(deps.db, botId)) deps.logger.error(`Bot ${botId}: Telegram refuses its token (${(err as Error).message}); its queue is paused until it gets the new one`);
		await recordFailed(deps, botId, row, step.failure);
		return true;
	} else {
		await recordFailed(deps, botId, row, step.failure);
	}
	return false;
}

/**
 * Telegram says the chat became a supergroup: the chat records where it went, and this message and
 * the chat's later ones fail, naming it (Telegram would refuse them alike). They are not sent to the
 * supergroup: grants are per chat, and the supergroup's may differ (the group's are carried over to it).
 */
async function failMigratedChat(deps: RecordingDeps, botId: number, row: OutboundQueueItem, migrateTo: number, telegramCode: number | undefined): Promise<void> {
	const newChatId = await noteChatMigration(deps.db, Number(row.message_id), migrateTo);
	if (newChatId !== null) await deps.chatMigrated?.({ botId, fromTelegramId: Number(row.chat_telegram_id), toTelegramId: migrateTo });
	await recordFailed(deps, botId, row, failures.chatMigrated(migrateTo, newChatId, telegramCode));
	const later = await deps.db.models.OutboundQueueItem.findAll({
		where: { bot_id: botId, chat_telegram_id: row.chat_telegram_id, chat_kind: "group", message_id: { [Op.gt]: row.message_id } },
		order: [["message_id", "ASC"]],
	});
	for (const next of later) if (heldElsewhereFor(next, deps.owner) === 0) await recordFailed(deps, botId, next, failures.chatMigrated(migrateTo, newChatId));
}
