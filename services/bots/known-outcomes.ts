/**
 * Sends whose outcome is settled on Telegram's side but not recorded yet: Telegram took the message
 * (its answer), or the send may have reached it (a failure after which it is never sent again). The
 * sender keeps each in its process and, before its record is first tried, in the shared state
 * (`sent:<message id>`, for a day, dropped once the record is written), where every node looks after
 * claiming a row and before sending it: such a row is recorded, never sent (again), even when the
 * database was away for longer than the node that sent it kept trying.
 */
import type { SharedState } from "../../lib/state";
import type { TelegramMessage } from "../../lib/telegram/client";
import { failureOf, type SendFailure } from "./send-failure";

export type KnownOutcome = { sent: TelegramMessage } | { failed: SendFailure };

/** Far longer than the database may be away. */
const KEEP_MS = 24 * 60 * 60_000;
const keyOf = (messageId: number) => `sent:${messageId}`;

/** Telegram's answer is kept as it came (as nodes before failures were kept wrote it); a failure is wrapped. */
export async function shareOutcome(state: SharedState, messageId: number, outcome: KnownOutcome): Promise<void> {
	const value = "sent" in outcome ? (outcome.sent ?? {}) : { $failed: outcome.failed };
	await state.set(keyOf(messageId), JSON.stringify(value), KEEP_MS);
}

/** The outcome kept for this message by a try on any node, or null; throws when the shared state cannot be read. */
export async function sharedOutcome(state: SharedState, messageId: number): Promise<KnownOutcome | null> {
	const kept = await state.get(keyOf(messageId));
	if (kept === null) return null;
	let value: unknown;
	try {
		value = JSON.parse(kept);
	} catch {
		value = {};
	}
	const failed = value && typeof value === "object" ? (value as { $failed?: unknown }).$failed : undefined;
	if (failed && typeof failed === "object") {
		const failure = failureOf(JSON.stringify(failed));
		if (failure) return { failed: failure };
	}
	// Telegram took it whatever the answer looks like: the record reads only what has the right shape.
	return { sent: (value && typeof value === "object" ? value : {}) as TelegramMessage };
}

export async function forgetOutcome(state: SharedState, messageId: number): Promise<void> {
	await state.del(keyOf(messageId)).catch(() => undefined);
}
