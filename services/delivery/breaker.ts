/**
 * A circuit breaker per webhook endpoint, in the shared state so every delivery node sees the same
 * one (Moleculer's own breaker is per node and action, so one bad URL would trip it for all URLs).
 * Five consecutive failures open it for 60 s; then it is half-open and lets exactly one probe
 * through; the probe's success closes it, its failure opens it again. Deliveries to an open
 * endpoint wait in the queue; they are not dropped.
 */
import type { Database } from "../../lib/db/connection";
import type { SharedState } from "../../lib/state";

export const BREAKER = { failureThreshold: 5, openMs: 60_000, probeLeaseMs: 15_000 } as const;
const REMEMBER_MS = 24 * 3_600_000;

export type BreakerState = "closed" | "open" | "half_open";

const keys = (id: number) => ({
	failures: `breaker:${id}:failures`,
	openUntil: `breaker:${id}:open_until`,
	probe: `breaker:${id}:probe`,
});

export async function breakerState(state: SharedState, webhookId: number, now = Date.now()): Promise<{ state: BreakerState; openUntil: number | null }> {
	const raw = await state.get(keys(webhookId).openUntil);
	if (raw === null) return { state: "closed", openUntil: null };
	const openUntil = Number(raw);
	return { state: openUntil > now ? "open" : "half_open", openUntil };
}

/**
 * What this node may send to the endpoint now: anything (closed), the one probe (half-open, and
 * this node holds the cluster-wide probe lease; holding it again answers "probe" again, so the
 * caller keeps to one at a time), or nothing (open, or another node has the probe).
 */
export async function admission(state: SharedState, webhookId: number, owner: string): Promise<"any" | "probe" | null> {
	const { state: current } = await breakerState(state, webhookId);
	if (current === "closed") return "any";
	if (current === "open") return null;
	return (await state.acquireLease(keys(webhookId).probe, owner, BREAKER.probeLeaseMs)) ? "probe" : null;
}

export async function recordSuccess(state: SharedState, webhookId: number, owner: string): Promise<void> {
	const k = keys(webhookId);
	await Promise.all([state.del(k.failures), state.del(k.openUntil), state.releaseLease(k.probe, owner)]);
}

/** Gives the probe lease back without a verdict (the probe was never sent): the next probe may go. */
export async function releaseProbe(state: SharedState, webhookId: number, owner: string): Promise<void> {
	await state.releaseLease(keys(webhookId).probe, owner);
}

/** Counts a failure; returns true when this failure opened (or re-opened) the breaker. */
export async function recordFailure(state: SharedState, webhookId: number, owner: string): Promise<boolean> {
	const k = keys(webhookId);
	const before = await breakerState(state, webhookId);
	const failures = (await state.hit(k.failures, REMEMBER_MS)).count;
	if (before.state === "half_open" || failures >= BREAKER.failureThreshold) {
		await state.set(k.openUntil, String(Date.now() + BREAKER.openMs), REMEMBER_MS);
		await state.del(k.failures);
		await state.releaseLease(k.probe, owner);
		return true;
	}
	return false;
}

/** Active endpoints by breaker state, for the tgw_webhook_breakers gauge (a count per state, never a label per URL). */
export async function breakerCounts(db: Database, state: SharedState, now = Date.now()): Promise<Record<BreakerState, number>> {
	const counts: Record<BreakerState, number> = { closed: 0, open: 0, half_open: 0 };
	const active = await db.models.Webhook.findAll({ where: { is_active: true }, attributes: ["id"], raw: true });
	const states = await Promise.all(active.map((row) => breakerState(state, Number(row.id), now)));
	for (const s of states) counts[s.state] += 1;
	return counts;
}
