/**
 * An action marked `implicitIdempotencyKey: true` (chats.send) is given an Idempotency-Key by its
 * caller when the client sent none. The action may then be retried like any other (its node died
 * with the call in flight, or the call timed out): the retry finds the message the first attempt
 * queued and answers with it, instead of queuing it again. Without this a worker killed while a
 * send was waiting for Telegram answered 503 "try again" for a message that went out, and the
 * client's retry sent it twice. The key is generated once per request; retries share the call's
 * meta (Moleculer's ctx.copy), so every attempt carries the same one.
 */
import { randomUUID } from "node:crypto";
import type { ActionHandler, ActionSchema, Context } from "moleculer";

/** Implicit keys stand apart from a client's (which are at most 64 characters of [A-Za-z0-9._:-]). */
export const IMPLICIT_KEY_PREFIX = "implicit:";

function withImplicitKey(next: ActionHandler, action: ActionSchema): ActionHandler {
	if ((action as { implicitIdempotencyKey?: unknown }).implicitIdempotencyKey !== true) return next;
	return function implicitIdempotencyKey(ctx: Context<unknown, { idempotencyKey?: string }>) {
		if (ctx.meta.idempotencyKey === undefined) ctx.meta.idempotencyKey = `${IMPLICIT_KEY_PREFIX}${randomUUID()}`;
		return next(ctx);
	};
}

export const ImplicitIdempotencyKeyMiddleware = {
	name: "ImplicitIdempotencyKey",
	localAction: withImplicitKey,
	remoteAction: withImplicitKey,
};
