/**
 * The delivery service's two loops: the dispatcher (one per cluster, under a lease) turns the event
 * log into delivery rows; every node's work loop claims due rows endpoint by endpoint, within each
 * endpoint's cap and breaker, sends them signed, and records the outcomes in batches.
 */
import type { Webhook } from "../../lib/db/models";
import { sleep } from "../../lib/async";
import { inIds, read } from "../../lib/db/raw";
import { toApiError } from "../../lib/errors";
import { metricsOf } from "../../lib/metrics";
import { tally } from "../../lib/tally";
import type { GatewayEvent } from "../broker/event-log";
import { Batcher } from "../../lib/batcher";
import { attemptDelivery } from "./attempt";
import { admission, recordFailure, recordSuccess, releaseProbe } from "./breaker";
import { audienceById } from "./audiences";
import { claimDeliveries, webhooksWithDueDeliveries, type Claimed, type ClaimRequest } from "./claims";
import type { DeliveryWake } from "./due-hints";
import type { DeliveryThis } from "./context";
import { dispatchBatch } from "./dispatcher";
import { ownerMayRead } from "./matching";
import { NODE_CONCURRENCY, OWNER_SHARE_PER_NODE, shareNodeRoom, type SlotWish } from "./node-share";
import { judge, recordOutcomes, type Outcome } from "./outcomes";
import { owningUsersOf, type OwningUser } from "./webhook-quota";

const CLAIM_LEASE_MS = 30_000;
const DISPATCH_BATCH = 500;
/** Shortest time between two dispatcher transactions while events keep coming. */
const DISPATCH_COALESCE_MS = 20;
/** Between two dispatcher steps while no webhook is active, unless one is created. */
const NO_WEBHOOKS_PAUSE_MS = 1_000;
/** Endpoints with due deliveries looked at per round of the work loop. */
const DUE_PAGE = 500;

/** What a receiver gets: API.md's delivery body. */
function deliveryBody(event: GatewayEvent): string {
	return JSON.stringify({
		event_id: `evt_${event.seq}`,
		event: event.type,
		seq: event.seq,
		bot_id: event.bot_id,
		chat_id: event.chat_id,
		...(event.message ? { message: event.message } : {}),
		...(event.update !== undefined ? { update: event.update, update_kind: event.update_kind } : {}),
		timestamp: event.created_at,
	});
}

/** Every node competes for the one dispatcher lease; the holder drains the log into deliveries. */
export async function dispatcherLoop(service: DeliveryThis): Promise<void> {
	while (service.running) {
		await service.leases.run("delivery:dispatcher", async (signal) => {
			while (!signal.aborted && service.running) {
				try {
					const startedAt = Date.now();
					const list = await service.audiences();
					const generation = service.audienceGeneration;
					const result = await dispatchBatch(service.runtime.db, list, DISPATCH_BATCH, () => service.audienceGeneration === generation);
					if (result.stale) {
						// Another node's change, heard of before its broadcast: build the list again and retry now.
						service.invalidateAudiences();
						continue;
					}
					if (result.deliveries > 0) await service.broker.broadcast("delivery.wake", { webhook_ids: result.webhookIds } satisfies DeliveryWake);
					if (result.events === DISPATCH_BATCH) continue;
					if (list.audiences.length === 0) {
						// No active webhook: a step only moves the cursor past events nobody wants. Once a
						// second is enough until one is created; every step costs a write transaction, and
						// on SQLite each ingest commit waits behind it.
						await service.webhooksBell.wait(NO_WEBHOOKS_PAUSE_MS);
						continue;
					}
					await service.dispatcherBell.wait(500);
					// Under load the bell rings for every ingest commit: a short pause lets one
					// transaction take many events instead of each commit costing one of its own.
					const elapsed = Date.now() - startedAt;
					if (elapsed < DISPATCH_COALESCE_MS) await sleep(DISPATCH_COALESCE_MS - elapsed, signal);
				} catch (err) {
					service.logger.warn("Webhook dispatcher:", (err as Error).message);
					await sleep(1_000, signal);
				}
			}
		});
		if (service.running) await sleep(2_000);
	}
}

/** Claims due deliveries endpoint by endpoint, within each one's cap and its owner's share of the node, and sends them. */
export async function workLoop(service: DeliveryThis): Promise<void> {
	const record = new Batcher<Outcome, void>({
		write: async (outcomes) => {
			await recordOutcomes(service.runtime.db, service.owner, outcomes);
			return outcomes.map(() => undefined);
		},
		maxBatch: 200,
		concurrency: service.runtime.db.dialect === "sqlite" ? 1 : 2,
		isUnavailable: (err) => toApiError(err).status === 503,
	});
	const targets = new Map<number, Webhook>();
	const owners = new Map<number, OwningUser>();
	const sending = new Set<Promise<void>>();
	let cursor = 0;
	while (service.running) {
		let started = 0;
		try {
			if (service.inFlightTotal < NODE_CONCURRENCY) {
				let due: number[];
				// A full scan, once started, goes on page by page until it wraps around.
				if (cursor !== 0 || service.dueHints.fullScanDue) {
					if (cursor === 0) service.dueHints.fullScanStarted();
					due = await webhooksWithDueDeliveries(service.runtime.db, cursor, DUE_PAGE);
					// The next round looks at the next page; a short page means the end, so wrap around.
					cursor = due.length < DUE_PAGE ? 0 : due[due.length - 1]!;
					if (cursor === 0) service.dueHints.fullScanDone();
					service.dueHints.hint(due);
				} else {
					const ripe = service.dueHints.ripe(DUE_PAGE);
					due = ripe.length === 0 ? [] : await webhooksWithDueDeliveries(service.runtime.db, 0, DUE_PAGE, ripe.map((r) => r.id));
					service.dueHints.settle(ripe, due);
				}
				if (due.length > 0) {
					targets.clear();
					const rows = await service.runtime.db.models.Webhook.findAll({ where: { id: due, is_active: true } });
					for (const row of rows) targets.set(row.id, row);
					owners.clear();
					for (const [id, user] of await owningUsersOf(service.runtime.db, rows, service.keyUsers)) owners.set(id, user);
				}
				// Fairness: start from a different endpoint each round, and share this node's room out
				// by owner (node-share.ts). Each endpoint's room under its cap is counted where it is
				// claimed, from every node's claims: counted here it would be stale by then (answers keep coming in).
				const wishes: SlotWish[] = [];
				const probes = new Set<number>();
				for (const id of due.sort(() => Math.random() - 0.5)) {
					const target = targets.get(id);
					if (!target) continue;
					// Every slot on the wire from here: its next answer rings the bell for another round.
					if ((service.inFlight.get(id) ?? 0) >= target.max_concurrency) continue;
					// A half-open endpoint gets one probe, and nothing else until its outcome is on record.
					if (service.probing.has(id)) continue;
					// An owner with its whole share of this node in flight gets nothing this round: asking
					// the breaker would cost a round trip, and take a probe lease it could not use.
					if ((service.ownerInFlight.get(owners.get(id) ?? 0) ?? 0) >= OWNER_SHARE_PER_NODE) continue;
					const admitted = await admission(service.runtime.state, id, service.owner);
					if (admitted === null) continue;
					if (admitted === "probe") {
						service.troubled.add(id);
						probes.add(id);
					}
					const wants = admitted === "probe" ? 1 : target.max_concurrency - (service.inFlight.get(id) ?? 0);
					wishes.push({ webhookId: id, owner: owners.get(id) ?? 0, wants });
				}
				const room = NODE_CONCURRENCY - service.inFlightTotal;
				const shares = shareNodeRoom(wishes, (owner) => service.ownerInFlight.get(owner) ?? 0, room);
				const requests: ClaimRequest[] = wishes
					.filter((w) => (shares.get(w.webhookId) ?? 0) > 0)
					.map((w) => {
						const target = targets.get(w.webhookId)!;
						return { id: w.webhookId, ordered: Boolean(target.ordered), count: shares.get(w.webhookId)!, maxConcurrency: target.max_concurrency };
					});
				const claimed = await claimDeliveries(service.runtime.db, requests, service.owner, CLAIM_LEASE_MS, {
					answeredHere: (id) => service.answered.get(id) ?? 0,
					limit: room,
				});
				for (const claim of claimed) if (probes.has(claim.webhook_id)) service.probing.add(claim.webhook_id);
				// A probe lease taken for an endpoint that got no share, or had nothing left to claim, goes
				// back: held (and renewed every round) it would keep the other nodes from probing it.
				for (const id of probes) if (!service.probing.has(id)) await releaseProbe(service.runtime.state, id, service.owner).catch(() => undefined);
				const events = claimed.length > 0 ? await loadEvents(service, claimed) : new Map<number, GatewayEvent>();
				for (const claim of claimed) {
					const run = send(service, targets.get(claim.webhook_id)!, owners.get(claim.webhook_id) ?? 0, claim, events.get(claim.event_seq), record)
						// Whatever went wrong is this delivery's (its lease runs out, it is tried again), never the node's: unhandled, it ended the process.
						.catch((err: unknown) => service.logger.error(`Webhook ${claim.webhook_id}: delivery ${claim.id} failed unexpectedly:`, err))
						.finally(() => sending.delete(run));
					sending.add(run);
					started += 1;
				}
			}
		} catch (err) {
			service.logger.warn("Webhook worker:", (err as Error).message);
			await sleep(1_000);
		}
		if (started === 0 && service.running) await service.workerBell.wait(250);
	}
	await Promise.allSettled([...sending]);
}

async function loadEvents(service: DeliveryThis, claimed: Claimed[]): Promise<Map<number, GatewayEvent>> {
	const seqs = [...new Set(claimed.map((c) => c.event_seq))];
	const seqList = inIds(service.runtime.db, seqs);
	const rows = await read<{ seq: number; payload: string }>(service.runtime.db, `SELECT seq, payload FROM events WHERE seq ${seqList.sql}`, seqList.values);
	return new Map(rows.map((r) => [Number(r.seq), JSON.parse(r.payload) as GatewayEvent]));
}

/**
 * The owner may have lost the right to read the event's chat (a grant, a key or the user revoked)
 * since the delivery was made: asked before every attempt, a retry by hand included, of the
 * dispatcher's audiences (built again after every auth change) or, for a webhook not in them yet,
 * of the owner's access itself.
 */
async function ownerMayStillRead(service: DeliveryThis, row: Webhook, event: GatewayEvent): Promise<boolean> {
	const listed = audienceById(await service.audiences(), row.id);
	return ownerMayRead((listed ?? (await service.audienceOf(row))).access, event);
}

/** The outcome of a delivery that cannot be made: dead, with why, and nothing sent. */
function notSent(claim: Claimed, error: string): Outcome {
	return { delivery: claim, result: { statusCode: null, error, excerpt: null, durationMs: 0, retryAfterMs: null, startedAt: new Date() }, verdict: "dead", nextAttemptAt: null };
}

/** An attempt that could not be made: the webhook's signing secret cannot be read. */
function notSigned(error: string): NonNullable<Outcome["result"]> {
	return { statusCode: null, error, excerpt: null, durationMs: 0, retryAfterMs: null, startedAt: new Date() };
}

/** A delivery its owner may no longer read. */
function refused(claim: Claimed, event: GatewayEvent): Outcome {
	return notSent(claim, `Not sent: the webhook's owner may no longer read ${event.chat_id === null ? "events without a chat (admins only)" : `chat ${event.chat_id}`}`);
}

/**
 * A delivery whose event is no longer in the log: removed by EVENT_RETENTION_DAYS while the
 * delivery waited (its endpoint's breaker open, its webhook disabled, a replay of old events).
 * Another try could never find it either.
 */
function eventGone(claim: Claimed): Outcome {
	return notSent(claim, `Not sent: event ${claim.event_seq} is no longer in the event log (removed by EVENT_RETENTION_DAYS)`);
}

async function send(service: DeliveryThis, row: Webhook, owner: OwningUser, claim: Claimed, event: GatewayEvent | undefined, record: Batcher<Outcome, void>): Promise<void> {
	const { state } = service.runtime;
	tally(service.inFlight, row.id, 1);
	tally(service.ownerInFlight, owner, 1);
	service.inFlightTotal += 1;
	let result;
	try {
		if (!event || !(await ownerMayStillRead(service, row, event))) {
			await record.submit(event ? refused(claim, event) : eventGone(claim));
			metricsOf(service.broker).webhookDeliveries.inc({ outcome: "dead" });
			return;
		}
		let secrets: ReturnType<DeliveryThis["secretsOf"]> | null = null;
		let unreadable = "";
		try {
			secrets = service.secretsOf(row);
		} catch (err) {
			unreadable = toApiError(err).body.error.message;
		}
		// Unsigned, nothing goes out: a failed attempt, tried again on the schedule (the key may come back).
		result = secrets
			? await attemptDelivery(
					service.agent,
					row.url,
					secrets,
					{ id: `evt_${event.seq}`, event: event.type, deliveryId: String(claim.id), body: deliveryBody(event) },
					service.runtime.config.webhookAllowPrivate,
				)
			: notSigned(unreadable);
	} finally {
		// The cap counts requests on the wire: the slot frees as soon as the endpoint answered.
		tally(service.inFlight, row.id, -1);
		tally(service.ownerInFlight, owner, -1);
		service.inFlightTotal -= 1;
		if (result) tally(service.answered, row.id, 1);
		// Nothing went out (no event, or its owner may not read it): if this was the probe, the endpoint
		// still owes one, so the next round may take it, here or on another node.
		else if (service.probing.delete(row.id)) await releaseProbe(state, row.id, service.owner).catch(() => undefined);
		service.workerBell.ring();
	}
	try {
		const outcome: Outcome = { delivery: claim, result, ...judge(claim, result) };
		if (outcome.verdict === "succeeded") {
			// Resetting the shared breaker costs a round trip: only when a failure may be on record.
			if (service.troubled.delete(row.id)) await recordSuccess(state, row.id, service.owner).catch(() => undefined);
		} else {
			service.troubled.add(row.id);
			if (await recordFailure(state, row.id, service.owner).catch(() => false)) {
				service.logger.warn(`Webhook ${row.id}: circuit open after repeated failures (${result.error ?? result.statusCode})`);
			}
		}
		await record.submit(outcome);
		// Recorded: the endpoint may have more due now (the chat's next event, rows over its cap).
		service.dueHints.hint([row.id]);
		// And this one again at its retry, on whichever delivery node has room then.
		// Not heard (the transporter away): the nodes' full scans find it within FULL_SCAN_MS of its time.
		if (outcome.nextAttemptAt) await service.broker.broadcast("delivery.wake", { retries: [{ webhook_id: row.id, at: outcome.nextAttemptAt.getTime() }] } satisfies DeliveryWake).catch(() => undefined);
		metricsOf(service.broker).webhookDeliveries.inc({ outcome: outcome.verdict });
		if (outcome.verdict === "gone") await service.broker.broadcast("webhooks.changed", { id: row.id });
	} catch (err) {
		// The lease runs out and the delivery is attempted again: at least once.
		service.logger.warn(`Webhook ${row.id}: delivery ${claim.id} could not be recorded:`, (err as Error).message);
	} finally {
		// On record (or given up to the lease): the endpoint's cap has room again, and a probe's verdict is known.
		tally(service.answered, row.id, -1);
		service.probing.delete(row.id);
		service.workerBell.ring();
	}
}
