/**
 * The client protocol shared by socket.io and the plain WebSocket: what a subscribe or unsubscribe
 * looks like (one fastest-validator schema for both), and how errors are told to the client (the
 * API's codes, as in REST).
 */
import Validator from "fastest-validator";
import { fail, toApiError } from "../../lib/errors";
import type { Topic } from "../../mixins/event-stream/subscription-hub";

const validator = new Validator({ haltOnFirstError: false });

const checkSubscribe = validator.compile({
	$$root: false,
	$$strict: true,
	chat_id: { type: "number", integer: true, positive: true, optional: true },
	bot_id: { type: "number", integer: true, positive: true, optional: true },
	since_seq: { type: "number", integer: true, min: 0, optional: true },
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
		throw fail.validation([{ field: "", message: "The payload must be an object with chat_id or bot_id" }]);
	}
	const result = checkSubscribe(payload);
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
	maxQueuedPackets: 1_000,
	maxQueuedBytes: 8 * 1024 * 1024,
} as const;
