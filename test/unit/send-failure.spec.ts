/** What a failed send means: sent again or not (at most once for unknown outcomes, a time budget for safe failures), and the failure it records and answers. */
import { toApiError } from "../../lib/errors";
import { TelegramApiError, TelegramNetworkError } from "../../lib/telegram/client";
import { afterFailedSend, failedSendError, failureColumn, failureOf, failures, MIN_SAFE_ATTEMPTS, SAFE_RETRY_WINDOW_MS, type NextStep } from "../../services/bots/send-failure";

const NOW = 1_700_000_000_000;
const fresh = { attempt: 1, queuedAt: NOW, now: NOW, random: () => 0.5 };
const failureIn = (step: NextStep) => (step.kind === "fail" ? step.failure : null);

describe("afterFailedSend", () => {
	it.each([
		["no answer within the timeout", new TelegramNetworkError("sendMessage", "maybe", "no answer within 10000 ms")],
		["the connection lost after the request went out", new TelegramNetworkError("sendMessage", "maybe", "UND_ERR_SOCKET")],
		["an answer that is not JSON (a 504 page)", new TelegramNetworkError("sendMessage", "maybe", "HTTP 504 with a body that is not JSON")],
		["a 500 from the Bot API", new TelegramApiError("sendMessage", 500, "Internal Server Error: sent message was immediately deleted and can't be returned", null)],
		["a 504 from the Bot API", new TelegramApiError("sendMessage", 504, "Gateway Timeout", null)],
	])("%s: never sent again, failed as may have been delivered (CONFLICT, which no client retries on its own)", (_name, err) => {
		const step = afterFailedSend(err, fresh);
		expect(step.kind).toBe("fail");
		const failure = failureIn(step)!;
		expect(failure.code).toBe("CONFLICT");
		expect(failure.details.may_have_been_delivered).toBe(true);
		expect(failure.message).toMatch(/may have been delivered/);
		if (err instanceof TelegramApiError) expect(failure.details.telegram_error_code).toBe(err.errorCode);
	});

	it.each([
		["connection refused", new TelegramNetworkError("sendMessage", "no", "ECONNREFUSED")],
		["nginx's 502 page", new TelegramNetworkError("sendMessage", "no", "HTTP 502 with a body that is not JSON")],
		["a JSON 502 from Telegram's front", new TelegramApiError("sendMessage", 502, "Bad Gateway", null)],
		["a JSON 503", new TelegramApiError("sendMessage", 503, "Service Unavailable", null)],
	])("%s: tried again with backoff, not counted against anything but the time budget", (_name, err) => {
		expect(afterFailedSend(err, fresh)).toEqual({ kind: "retry", delayMs: 1_000, note: expect.any(String) });
		// Far past the old give-up count of 8, inside the window.
		expect(afterFailedSend(err, { ...fresh, attempt: 12, now: NOW + 5 * 60_000 })).toMatchObject({ kind: "retry", delayMs: 60_000 });
	});

	it("a safe failure past the window (and after the fewest tries) fails as not delivered, saying so plainly", () => {
		const err = new TelegramNetworkError("sendMessage", "no", "ECONNREFUSED");
		const late = { ...fresh, attempt: MIN_SAFE_ATTEMPTS, now: NOW + SAFE_RETRY_WINDOW_MS - 30_000 };
		const failure = failureIn(afterFailedSend(err, late))!;
		expect(failure).toEqual({
			code: "UNAVAILABLE",
			message: `Not sent: Telegram could not be reached for 15 min after the message was queued (${MIN_SAFE_ATTEMPTS} attempts, the last: ECONNREFUSED)`,
			details: { may_have_been_delivered: false },
		});
		expect(failureIn(afterFailedSend(new TelegramApiError("sendMessage", 502, "Bad Gateway", null), late))!.details).toEqual({ may_have_been_delivered: false, telegram_error_code: 502 });
	});

	it("a message that waited past the window behind a backlog still gets the fewest tries", () => {
		const err = new TelegramNetworkError("sendMessage", "no", "ECONNREFUSED");
		const longQueued = { ...fresh, attempt: MIN_SAFE_ATTEMPTS - 1, now: NOW + 2 * SAFE_RETRY_WINDOW_MS };
		expect(afterFailedSend(err, longQueued).kind).toBe("retry");
		expect(afterFailedSend(err, { ...longQueued, attempt: MIN_SAFE_ATTEMPTS }).kind).toBe("fail");
	});

	it("a 429 pauses the bot for retry_after (at least 1 s, at most an hour)", () => {
		expect(afterFailedSend(new TelegramApiError("sendMessage", 429, "Too Many Requests: retry after 7", 7, { retry_after: 7 }), fresh)).toMatchObject({ kind: "pause", seconds: 7 });
		expect(afterFailedSend(new TelegramApiError("sendMessage", 429, "Too Many Requests", null), fresh)).toMatchObject({ kind: "pause", seconds: 1 });
		expect(afterFailedSend(new TelegramApiError("sendMessage", 429, "Too Many Requests", 1e9), fresh)).toMatchObject({ kind: "pause", seconds: 3_600 });
	});

	it("other 4xx are refusals (BAD_REQUEST with telegram_error_code); an upgraded group is a CONFLICT naming the supergroup", () => {
		expect(failureIn(afterFailedSend(new TelegramApiError("sendMessage", 403, "Forbidden: bot was blocked by the user", null), fresh))).toEqual({
			code: "BAD_REQUEST",
			message: "Forbidden: bot was blocked by the user",
			details: { telegram_error_code: 403 },
		});
		const migrated = new TelegramApiError("sendMessage", 400, "Bad Request: group chat was upgraded to a supergroup chat", null, { migrate_to_chat_id: -1_001_234 });
		expect(failureIn(afterFailedSend(migrated, fresh))).toMatchObject({ code: "CONFLICT", details: { migrate_to_chat_id: -1_001_234, new_chat_id: null, telegram_error_code: 400 } });
	});

	it("an error of the gateway's own (before anything went out) is tried a few times, then fails as INTERNAL", () => {
		expect(afterFailedSend(new TypeError("boom"), fresh).kind).toBe("retry");
		expect(failureIn(afterFailedSend(new TypeError("boom"), { ...fresh, attempt: 8 }))).toMatchObject({ code: "INTERNAL" });
	});
});

describe("the recorded failure and the answer", () => {
	it("is kept whole in the error column, and read back", () => {
		const failure = failures.mayHaveBeenDelivered("no answer within 10000 ms");
		expect(failureOf(failureColumn(failure))).toEqual(failure);
		expect(JSON.parse(failureColumn({ ...failure, message: "x".repeat(5_000) })).message).toHaveLength(1_000);
	});

	it("a message failed before failures were kept whole (a bare text) reads as a refusal; so does a text that merely looks like JSON", () => {
		expect(failureOf("Forbidden: bot was blocked by the user")).toEqual({ code: "BAD_REQUEST", message: "Forbidden: bot was blocked by the user", details: {} });
		expect(failureOf('{"not": "ours"}')).toEqual({ code: "BAD_REQUEST", message: '{"not": "ours"}', details: {} });
		expect(failureOf(null)).toBeNull();
	});

	it.each([
		[failures.refused("Forbidden: bot was blocked by the user", 403), 400, "BAD_REQUEST", "Telegram refused the message: Forbidden: bot was blocked by the user"],
		[failures.mayHaveBeenDelivered("no answer within 10000 ms"), 409, "CONFLICT", "Telegram did not confirm the message (no answer within 10000 ms): it may have been delivered, so it was not sent again"],
		[failures.chatMigrated(-1_001_234, 42, 400), 409, "CONFLICT", expect.stringContaining("chat 42 here")],
		[failures.botDeleted(), 409, "CONFLICT", "the bot was deleted before this message was sent"],
	])("answers a send with the right status, the message id and the details (%#)", (failure, status, code, message) => {
		const answer = toApiError(failedSendError(7, failureColumn(failure)));
		expect(answer).toEqual({ status, body: { error: { code, message, details: { message_id: 7, ...failure.details } } } });
	});
});

describe("a token Telegram refuses", () => {
	it.each([
		[401, "Unauthorized"],
		[404, "Not Found"],
	])("%i %s: the bot's credential, not the message: UNAVAILABLE with bot_token_refused, never a 400", (code, description) => {
		const failure = failureIn(afterFailedSend(new TelegramApiError("sendMessage", code, description, null), fresh))!;
		expect(failure).toMatchObject({ code: "UNAVAILABLE", details: { bot_token_refused: true, may_have_been_delivered: false, telegram_error_code: code } });
		const answer = toApiError(failedSendError(7, failureColumn(failure)));
		expect(answer.status).toBe(503);
		expect(answer.body.error.details).toMatchObject({ message_id: 7, bot_token_refused: true });
	});
});
