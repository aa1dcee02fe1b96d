/**
 * What a failed send means: whether the message is tried again, and, when it is not, the failure it
 * is recorded with and answered with.
 *
 * - At most once. Telegram has no idempotency key to ask whether it took a request, so a send whose
 *   outcome is unknown (no answer in time, the connection lost after the request went out, a 500 or a
 *   504, an answer that cannot be read) is not sent again: it may be in the chat already, and a second
 *   copy to a person is worse than a failure the client sees and decides on. The message fails with
 *   `may_have_been_delivered: true` (CONFLICT: a status no client retries on its own).
 * - A failure that cannot have reached the chat (no connection was made, or Telegram's front said the
 *   Bot API behind it could not be reached: 502, 503) is tried again with backoff until
 *   SAFE_RETRY_WINDOW_MS after the message was queued, and at least MIN_SAFE_ATTEMPTS times (a message
 *   that waited long behind a backlog still gets a few tries); then it fails as not delivered
 *   (UNAVAILABLE, `may_have_been_delivered: false`).
 * - A 429 pauses the bot and is not counted. A 401 or 404 refuses the bot's token, not the message
 *   (revoked at BotFather): UNAVAILABLE with `bot_token_refused: true`, and the bot's queue pauses
 *   (token-refusal.ts). Other 4xx answers are refusals (BAD_REQUEST with `telegram_error_code`),
 *   except a group upgraded to a supergroup (CONFLICT, naming the supergroup).
 *
 * The failure is kept in the message's `error` column as JSON `{message, code, details}`, so every
 * answer about the message (a retried Idempotency-Key, GET /messages/:id, its event) carries it. Rows
 * failed before hold a bare text (Telegram's description, mostly) and read as a refusal.
 */
import { GatewayError, type ApiErrorCode } from "../../lib/errors";
import { TelegramApiError, TelegramNetworkError } from "../../lib/telegram/client";
import { MAX_RETRY_AFTER_SECONDS } from "./flood";

/** How long after it was queued a message whose sends cannot have reached Telegram is still tried. */
export const SAFE_RETRY_WINDOW_MS = 15 * 60_000;
/** A message is tried at least this often before it fails as not delivered, however long it waited in the queue. */
export const MIN_SAFE_ATTEMPTS = 8;
/** Tries of a send that failed inside the gateway (a bug, logged): it never reached Telegram. */
export const MAX_INTERNAL_ATTEMPTS = 8;

/** Statuses with which Telegram's front says the Bot API behind it was not reached. */
const FRONT_COULD_NOT_FORWARD = new Set([502, 503]);

export type FailureCode = Extract<ApiErrorCode, "BAD_REQUEST" | "CONFLICT" | "UNAVAILABLE" | "INTERNAL">;
const FAILURE_CODES: ReadonlySet<string> = new Set<FailureCode>(["BAD_REQUEST", "CONFLICT", "UNAVAILABLE", "INTERNAL"]);

export interface FailureDetails {
	telegram_error_code?: number;
	may_have_been_delivered?: boolean;
	/** Telegram's id of the supergroup a group became. */
	migrate_to_chat_id?: number;
	/** The gateway's chat of that supergroup; null while the bot has not seen it. */
	new_chat_id?: number | null;
	/** Telegram refused the bot's token (401/404): the gateway's credential is the problem, not the message. */
	bot_token_refused?: boolean;
}

export interface SendFailure {
	code: FailureCode;
	message: string;
	details: FailureDetails;
}

export type NextStep =
	| { kind: "pause"; seconds: number; note: string }
	| { kind: "retry"; delayMs: number; note: string }
	| { kind: "fail"; failure: SendFailure };

export interface Attempt {
	/** This try's number, from 1. */
	attempt: number;
	/** When the message was queued (ms). */
	queuedAt: number;
	now: number;
	random?: () => number;
}

/** 1 s, 2 s, 4 s ... at most a minute, with ±20 % jitter. */
export function retryDelayMs(attempt: number, random = Math.random): number {
	const base = Math.min(60_000, 1_000 * 2 ** Math.max(0, attempt - 1));
	return Math.round(base * (0.8 + 0.4 * random()));
}

export const failures = {
	refused: (description: string, telegramCode: number): SendFailure => ({ code: "BAD_REQUEST", message: description, details: { telegram_error_code: telegramCode } }),
	// CONFLICT, not UNAVAILABLE: clients and gRPC retry policies repeat a 503 / UNAVAILABLE on their
	// own, and a blind repeat here is the duplicate this answer exists to prevent.
	mayHaveBeenDelivered: (why: string, telegramCode?: number): SendFailure => ({
		code: "CONFLICT",
		message: `Telegram did not confirm the message (${why}): it may have been delivered, so it was not sent again`,
		details: { may_have_been_delivered: true, ...(telegramCode ? { telegram_error_code: telegramCode } : {}) },
	}),
	// A restored database holds, as queued, messages that may have gone out after the backup was taken.
	queuedAtBackup: (): SendFailure => ({
		code: "CONFLICT",
		message: "The message was waiting to be sent when the database was backed up, and the database was restored from that backup: it may have been sent before the restore, so it was not sent again",
		details: { may_have_been_delivered: true },
	}),
	notDelivered: (why: string, attempts: number, waitedMs: number, telegramCode?: number): SendFailure => ({
		code: "UNAVAILABLE",
		message: `Not sent: Telegram could not be reached for ${Math.max(1, Math.round(waitedMs / 60_000))} min after the message was queued (${attempts} attempts, the last: ${why})`,
		details: { may_have_been_delivered: false, ...(telegramCode ? { telegram_error_code: telegramCode } : {}) },
	}),
	chatMigrated: (migrateTo: number, newChatId: number | null, telegramCode?: number): SendFailure => ({
		code: "CONFLICT",
		message:
			`This group was upgraded to a supergroup (Telegram id ${migrateTo}${newChatId === null ? ", not seen by the bot yet" : `, chat ${newChatId} here`}): ` +
			"it takes no more messages; send to the supergroup's chat instead",
		details: { migrate_to_chat_id: migrateTo, new_chat_id: newChatId, ...(telegramCode ? { telegram_error_code: telegramCode } : {}) },
	}),
	// UNAVAILABLE: nothing reached the chat, and the same message goes once the bot has its new token.
	tokenRefused: (telegramCode: number): SendFailure => ({
		code: "UNAVAILABLE",
		message: "Not sent: Telegram refuses the bot's token (revoked or deleted at BotFather); an operator must give the gateway the new one",
		details: { bot_token_refused: true, may_have_been_delivered: false, telegram_error_code: telegramCode },
	}),
	botDeleted: (): SendFailure => ({ code: "CONFLICT", message: "the bot was deleted before this message was sent", details: {} }),
	internal: (): SendFailure => ({ code: "INTERNAL", message: "the gateway could not send the message (an internal error, in its log)", details: {} }),
};

/** What to do after a send failed with `err`. */
export function afterFailedSend(err: unknown, attempt: Attempt): NextStep {
	if (err instanceof TelegramApiError) {
		if (err.errorCode === 429) {
			// Capped: a timer cannot wait past ~24.8 days (it would fire at once), and an hour is plenty.
			return { kind: "pause", seconds: Math.min(Math.max(err.retryAfterSeconds ?? 1, 1), MAX_RETRY_AFTER_SECONDS), note: err.message };
		}
		const migrateTo = err.parameters.migrate_to_chat_id;
		if (migrateTo !== undefined) return { kind: "fail", failure: failures.chatMigrated(migrateTo, null, err.errorCode) };
		if (err.errorCode === 401 || err.errorCode === 404) return { kind: "fail", failure: failures.tokenRefused(err.errorCode) };
		if (FRONT_COULD_NOT_FORWARD.has(err.errorCode)) return safeRetry(attempt, err.message, `${err.errorCode} ${err.description}`, err.errorCode);
		// A 500 can come after the message went out ("sent message was immediately deleted and can't be returned").
		if (err.errorCode >= 500) return { kind: "fail", failure: failures.mayHaveBeenDelivered(`${err.errorCode} ${err.description}`, err.errorCode) };
		return { kind: "fail", failure: failures.refused(err.description, err.errorCode) };
	}
	if (err instanceof TelegramNetworkError) {
		if (err.delivered === "no") return safeRetry(attempt, err.message, err.reason);
		return { kind: "fail", failure: failures.mayHaveBeenDelivered(err.reason) };
	}
	// The gateway's own failure, before anything went to Telegram.
	if (attempt.attempt < MAX_INTERNAL_ATTEMPTS) return { kind: "retry", delayMs: retryDelayMs(attempt.attempt, attempt.random), note: "internal error" };
	return { kind: "fail", failure: failures.internal() };
}

/** `note`: the error as the queue row keeps it; `why`: as the failure names it. */
function safeRetry({ attempt, queuedAt, now, random }: Attempt, note: string, why: string, telegramCode?: number): NextStep {
	const delayMs = retryDelayMs(attempt, random);
	if (attempt < MIN_SAFE_ATTEMPTS || now + delayMs <= queuedAt + SAFE_RETRY_WINDOW_MS) return { kind: "retry", delayMs, note };
	return { kind: "fail", failure: failures.notDelivered(why, attempt, now - queuedAt, telegramCode) };
}

/** The `error` column of a failed message. */
export function failureColumn(failure: SendFailure): string {
	return JSON.stringify({ message: failure.message.slice(0, 1000), code: failure.code, details: failure.details });
}

/** A failed message's failure, from its `error` column. */
export function failureOf(column: string | null | undefined): SendFailure | null {
	if (column === null || column === undefined) return null;
	if (column.startsWith("{")) {
		try {
			const kept = JSON.parse(column) as Partial<SendFailure>;
			if (typeof kept.message === "string" && FAILURE_CODES.has(String(kept.code)) && kept.details && typeof kept.details === "object") return kept as SendFailure;
		} catch {
			// Not ours: read as text below.
		}
	}
	// Failed before failures were kept whole: Telegram's description, or the gateway's own words.
	return { code: "BAD_REQUEST", message: column, details: {} };
}

/** The answer to a send whose message failed (the POST that queued it, or a retry with its Idempotency-Key), from its `error` column. */
export function failedSendError(messageId: number, errorColumn: string | null): GatewayError {
	const failure = failureOf(errorColumn) ?? { code: "BAD_REQUEST", message: "unknown error", details: {} };
	const message = failure.code === "BAD_REQUEST" ? `Telegram refused the message: ${failure.message}` : failure.message;
	return new GatewayError(failure.code, message, { message_id: messageId, ...failure.details });
}
