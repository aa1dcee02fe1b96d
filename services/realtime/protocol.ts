/**
 * The client protocol shared by socket.io and the plain WebSocket: what a subscribe or unsubscribe
 * looks like (one fastest-validator schema for both), the order a connection's requests are handled
 * in (the order they came), and how errors are told to the client (the API's codes, as in REST).
 */
import Validator from "fastest-validator";
import { SerialQueue } from "../../lib/async";
import { fail, toApiError } from "../../lib/errors";
import { unreadable } from "../../lib/validator";
import type { CloseReason, Topic } from "../../mixins/event-stream/subscription-hub";

// null is a value here: fastest-validator would let it through optional fields (as "not given"),
// and a `since_seq: null` then reached the replay, failing after the subscribe was confirmed.
const validator = new Validator({ haltOnFirstError: false, considerNullAsAValue: true });
const NOT_NULL = { nullable: false, messages: { required: "The '{field}' field must be a number: leave it out rather than send null." } };

const checkSubscribe = validator.compile({
	$$root: false,
	$$strict: true,
	// Bounded as REST's ids (lib/validator ID): past 2^53 a JSON number is rounded to a neighbour.
	chat_id: { type: "number", integer: true, positive: true, max: Number.MAX_SAFE_INTEGER, optional: true, ...NOT_NULL },
	bot_id: { type: "number", integer: true, positive: true, max: Number.MAX_SAFE_INTEGER, optional: true, ...NOT_NULL },
	since_seq: { type: "number", integer: true, min: 0, max: Number.MAX_SAFE_INTEGER, optional: true, ...NOT_NULL },
	// WebSocket frames name their action; socket.io frames do not.
	action: { type: "string", optional: true },
});

export interface SubscribeRequest {
	topic: Topic;
	sinceSeq?: number;
}

/** Validates a subscribe/unsubscribe payload: exactly one of chat_id and bot_id. */
export function parseSubscription(payload: unknown): SubscribeRequest {
	if (payload === null || typeof payload !== "object" || Array.isArray(payload)) {
		throw fail.validation([{ field: "payload", message: "The payload must be an object with chat_id or bot_id" }]);
	}
	let result: ReturnType<typeof checkSubscribe>;
	try {
		result = checkSubscribe(payload);
	} catch (err) {
		// fastest-validator writes a refused value into its message: one String() cannot read ({"toString": 0}) threw.
		if (err instanceof TypeError) throw fail.validation(unreadable(payload));
		throw err;
	}
	if (result !== true) {
		throw fail.validation(
			(result as Array<{ field?: string; message?: string; type?: string; actual?: unknown }>).flatMap((problem) =>
				problem.type === "objectStrict" && typeof problem.actual === "string"
					? problem.actual.split(",").map((field) => ({ field: field.trim().slice(0, 64), message: "Unknown field" }))
					: [{ field: problem.field ?? "", message: problem.message ?? "is invalid" }],
			),
		);
	}
	const { chat_id, bot_id, since_seq } = payload as { chat_id?: number; bot_id?: number; since_seq?: number };
	if ((chat_id === undefined) === (bot_id === undefined)) {
		throw fail.validation([
			{ field: "chat_id", message: "Give exactly one of 'chat_id' and 'bot_id'." },
			{ field: "bot_id", message: "Give exactly one of 'chat_id' and 'bot_id'." },
		]);
	}
	return { topic: chat_id !== undefined ? { kind: "chat", id: chat_id } : { kind: "bot", id: bot_id! }, sinceSeq: since_seq };
}

/** `{chat_id}` or `{bot_id}`: how a topic is named back to the client. */
export function topicFields(topic: Topic): Record<string, number> {
	if (topic.kind === "chat") return { chat_id: topic.id };
	if (topic.kind === "bot") return { bot_id: topic.id };
	return {};
}

/**
 * The chat_id / bot_id a request named, even one refused: an error answer carries them so the
 * client can tell which of its requests it answers. Only integers are echoed, never other input.
 */
export function namedTopicFields(payload: unknown): Record<string, number> {
	if (payload === null || typeof payload !== "object") return {};
	const named: Record<string, number> = {};
	for (const field of ["chat_id", "bot_id"] as const) {
		const value = (payload as Record<string, unknown>)[field];
		if (Number.isSafeInteger(value)) named[field] = value as number;
	}
	return named;
}

/**
 * Runs a connection's requests one at a time, in the order they arrived, so their answers come in
 * that order and an unsubscribe sent right behind a subscribe finds the subscription in place.
 * A request that throws does not stop the ones behind it (`failed` hears of it). With
 * SLOW_CLIENT.maxWaitingRequests waiting, a request is not queued and the answer is false: the
 * client sends faster than it is answered, and is closed (TOO_MANY_WAITING).
 */
export function requestQueue(failed: (err: unknown) => void): (request: () => Promise<void>) => boolean {
	const queue = new SerialQueue();
	return (request) => {
		if (queue.size >= SLOW_CLIENT.maxWaitingRequests) return false;
		queue.run(request).catch(failed);
		return true;
	};
}

/**
 * A subscribe as one step of a connection's queue: settles once the subscription is confirmed and in
 * the hub (`start` calls `authorized` then, and adds it in the same turn), or refused (rejects). A
 * replay goes on afterwards without holding the queue: an unsubscribe or a ping behind it is served
 * at once, and ends the replay. A failure after the confirmation (the replay could not read the log)
 * goes to `failedLater`: the client was told "subscribed" and must hear that it is not any more.
 */
export function subscribeStep(start: (authorized: () => void) => Promise<void>, confirm: () => void, failedLater: (err: unknown) => void): Promise<void> {
	return new Promise((resolve, reject) => {
		let confirmed = false;
		start(() => {
			confirmed = true;
			confirm();
			resolve();
		}).then(
			() => resolve(),
			(err: unknown) => (confirmed ? failedLater(err) : reject(err)),
		);
	});
}

export interface ClientError {
	code: string;
	message: string;
	details?: Record<string, unknown>;
}

export function clientError(err: unknown): ClientError {
	const { error } = toApiError(err).body;
	return { code: error.code, message: error.message, ...(error.details ? { details: error.details } : {}) };
}

/** Caps on what a slow client may leave queued before it is disconnected. */
export const SLOW_CLIENT = {
	/** Written to the client and not read yet. */
	maxQueuedPackets: 1_000,
	maxQueuedBytes: 8 * 1024 * 1024,
	/** Sent by the client and not answered yet (a subscribe waits for its ACL check). */
	maxWaitingRequests: 1_000,
} as const;

export const TOO_MANY_WAITING: CloseReason = {
	code: "RATE_LIMITED",
	message: `The client sends requests faster than they are answered: over ${SLOW_CLIENT.maxWaitingRequests.toLocaleString("en")} waiting`,
};
