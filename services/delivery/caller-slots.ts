/**
 * How many test pings and replays one caller may have running at once. The actions' bulkheads are
 * a node's, shared by every caller: one caller filling them would turn everyone else's calls away
 * (503). So each call first takes one of its caller's few slots, or is refused with 429 and
 * Retry-After. A caller is a user: an API key's calls count as its user's (keys are cheap to make).
 * The slots are leases in the shared state (Redis in a cluster), so the limit holds across nodes,
 * and a node that dies holding one frees it when the lease runs out (renewed while the call runs).
 */
import { randomUUID } from "node:crypto";
import { GatewayError } from "../../lib/errors";
import type { SharedState } from "../../lib/state";
import type { Principal } from "../auth/principal";

export interface CallerSlots {
	/** The lease keys' prefix. */
	name: string;
	perCaller: number;
	/** What the calls are, in the refusal's message. */
	what: string;
	retryAfterSeconds: number;
}

export const TEST_SLOTS: CallerSlots = { name: "webhook-test", perCaller: 2, what: "webhook tests", retryAfterSeconds: 1 };
export const REPLAY_SLOTS: CallerSlots = { name: "webhook-replay", perCaller: 1, what: "webhook replays", retryAfterSeconds: 5 };

/** A lease outlives its node by this at most; it is renewed every third of it while the call runs. */
const SLOT_LEASE_MS = 15_000;

/** Whose slots a call takes: its user's (the system's own calls share one caller). */
export function callerOf(principal: Principal): string {
	return principal.type === "system" ? "system" : `user:${principal.user_id}`;
}

/** Runs `work` in one of the caller's slots; none free: RATE_LIMITED, and `work` never runs. */
export async function inCallerSlot<T>(state: SharedState, slots: CallerSlots, caller: string, work: () => Promise<T>, leaseMs = SLOT_LEASE_MS): Promise<T> {
	const holder = randomUUID();
	let taken: string | null = null;
	for (let i = 0; i < slots.perCaller && taken === null; i++) {
		const key = `${slots.name}:${caller}:${i}`;
		if (await state.acquireLease(key, holder, leaseMs)) taken = key;
	}
	if (taken === null) {
		throw new GatewayError("RATE_LIMITED", `At most ${slots.perCaller} ${slots.what} of yours at once: try again when one has finished`, {
			retry_after: slots.retryAfterSeconds,
		});
	}
	const key = taken;
	// A renewal that fails (Redis away) lets the slot lapse while the work goes on: the slots bound
	// what one caller runs at once for fairness, they lock nothing that could be corrupted.
	const renewal = setInterval(() => void state.renewLeases([key], holder, leaseMs).catch(() => undefined), Math.floor(leaseMs / 3));
	renewal.unref();
	try {
		return await work();
	} finally {
		clearInterval(renewal);
		await state.releaseLease(key, holder).catch(() => undefined);
	}
}
