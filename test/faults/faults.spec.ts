/**
 * The fault suite (`npm run test:faults`): a five-node cluster on private MariaDB, NATS and Redis
 * processes, under steady load (Telegram pushing updates, a client sending messages, three webhook
 * endpoints, socket.io subscribers on both api nodes, a gRPC stream), suffers one fault at a time:
 * a worker, an api node and the grpc node SIGKILLed and started again; Redis and NATS killed and
 * started again; MariaDB killed for 20 s. For each, the figures say whether anything was lost:
 * updates answered 2xx but not stored, sends accepted but never sent, events in the log that a
 * webhook, socket or stream never got. They are written to test/faults/reports/latest.md.
 */
import { setTimeout as sleep } from "node:timers/promises";
import { isOk } from "./support/load";
import { writeReport, type FaultFigures } from "./support/report";
import { FaultScene, NODE_SPECS } from "./support/scene";

const UPDATES_PER_SECOND = 20;
const SENDS_PER_SECOND = 0.7;
/** Load before the fault, and after the component is back, in every phase. */
const BEFORE_MS = 5_000;
const AFTER_MS = 6_000;
/** Pending updates and sends must all be accepted within this once the load stops. */
const DRAIN_MS = 60_000;
/** Webhooks claimed by a killed node are sent again when their 30 s claim lease runs out. */
const FANOUT_MS = 45_000;

interface Fault {
	name: string;
	/** Breaks something and brings it back; resolves with what it did, in words. */
	inject(scene: FaultScene): Promise<string>;
}

async function storeOutage(scene: FaultScene, name: "mariadb" | "nats" | "redis", downMs: number, note: string): Promise<string> {
	const store = scene.stores[name];
	await store.kill();
	await sleep(downMs);
	await store.start();
	return `${name} SIGKILLed, down ${downMs / 1000} s, started again${note}`;
}

const FAULTS: Fault[] = [
	{ name: "baseline (no fault)", inject: async () => "nothing: the same load with every part up" },
	{
		name: "SIGKILL worker",
		async inject(scene) {
			// The webhook dispatcher's lease holder: its death must not stall or lose deliveries.
			const holder = await scene.leaseHolder("delivery:dispatcher");
			const victim = holder?.startsWith("worker-2:") ? "worker-2" : "worker-1";
			await scene.killAndRestart(victim);
			return `SIGKILL ${victim} (${holder ? "holder of the webhook dispatcher lease" : "no dispatcher lease was held"}), started again at once`;
		},
	},
	{
		name: "SIGKILL api node",
		async inject(scene) {
			await scene.killAndRestart("api-a");
			return "SIGKILL api-a (its socket.io subscriber and half of Telegram's pushes and the sends were on it), started again at once";
		},
	},
	{
		name: "SIGKILL grpc node",
		async inject(scene) {
			await scene.killAndRestart("grpc-1");
			return "SIGKILL grpc-1 (the gRPC stream's node), started again at once";
		},
	},
	{ name: "Redis restart", inject: (scene) => storeOutage(scene, "redis", 5_000, " empty (no persistence: leases, rate limits, breakers and the cache are gone)") },
	{ name: "NATS restart", inject: (scene) => storeOutage(scene, "nats", 8_000, " (longer than the 5 s heartbeat timeout)") },
	{ name: "MariaDB down 20 s", inject: (scene) => storeOutage(scene, "mariadb", 20_000, " (a crash: InnoDB recovers on start)") },
];

const countBy = (values: Array<string | number>) => values.reduce<Record<string, number>>((acc, v) => ((acc[String(v)] = (acc[String(v)] ?? 0) + 1), acc), {});

function longestGap(okTimes: number[], from: number, to: number): number {
	let longest = 0;
	let previous = from;
	for (const at of [...okTimes, to]) {
		longest = Math.max(longest, at - previous);
		previous = at;
	}
	return longest;
}

async function waitForSent(scene: FaultScene, texts: string[], timeoutMs: number): Promise<Map<string, number>> {
	const deadline = Date.now() + timeoutMs;
	for (;;) {
		const counts = new Map<string, number>();
		for (const record of scene.telegram.sent) if (record.text) counts.set(record.text, (counts.get(record.text) ?? 0) + 1);
		if (texts.every((t) => counts.has(t)) || Date.now() > deadline) return counts;
		await sleep(200);
	}
}

/** One phase: load, the fault, load again, then the tally of what went where. */
async function runPhase(scene: FaultScene, fault: Fault): Promise<FaultFigures & { drained: boolean }> {
	const { pusher, sender } = scene;
	const subscriptionsBefore = new Map(scene.tallies.map((t) => [t.name, t.subscriptions]));
	const from = await scene.headSeq();
	const [firstUpdate, firstSend] = [pusher.created.length, sender.created.length];
	const startedAt = Date.now();
	pusher.startProducing(UPDATES_PER_SECOND);
	sender.startProducing(SENDS_PER_SECOND);
	await sleep(BEFORE_MS);
	const faultAt = Date.now();
	const action = await fault.inject(scene);
	const backAt = Date.now();
	await sleep(AFTER_MS);
	pusher.stopProducing();
	sender.stopProducing();
	const drained = (await pusher.drain(DRAIN_MS)) && (await sender.drain(DRAIN_MS));
	const endedAt = Date.now();

	const updates = pusher.created.slice(firstUpdate);
	const ids = updates.map((u) => u.updateId);
	const stored = await scene.storedUpdateIds(ids[0]!, ids[ids.length - 1]!);
	const accepted = ids.filter((id) => pusher.accepted.has(String(id)));
	const attempts = pusher.attempts.filter((a) => a.at >= startedAt && a.at <= endedAt);
	const firstOk = Math.min(...updates.filter((u) => u.at >= faultAt && pusher.accepted.has(String(u.updateId))).map((u) => pusher.accepted.get(String(u.updateId))!));

	const sends = sender.created.slice(firstSend).filter((s) => sender.accepted.has(s.text));
	const sent = await waitForSent(scene, sends.map((s) => s.text), 30_000);
	const sendAttempts = sender.attempts.filter((a) => a.at >= startedAt && a.at <= endedAt);

	const to = await scene.headSeq();
	const resubscribed = new Map(scene.tallies.map((t) => [t.name, t.subscriptions - (subscriptionsBefore.get(t.name) ?? 0)]));
	const fanout = await scene.waitForFanout([from, to], FANOUT_MS, resubscribed);
	return {
		fault: fault.name,
		action,
		down_ms: fault.name.startsWith("baseline") ? 0 : backAt - faultAt,
		ingest: {
			sent: ids.length,
			accepted: accepted.length,
			stored: ids.filter((id) => stored.has(id)).length,
			lost: accepted.filter((id) => !stored.has(id)).length,
			refused: countBy(attempts.filter((a) => !isOk(a)).map((a) => a.status)),
			first_ok_after_fault_ms: Number.isFinite(firstOk) ? firstOk - faultAt : null,
			longest_gap_ms: longestGap(attempts.filter(isOk).map((a) => a.at), startedAt, endedAt),
		},
		sends: {
			accepted: sends.length,
			sent_to_telegram: sends.filter((s) => sent.has(s.text)).length,
			lost: sends.filter((s) => !sent.has(s.text)).length,
			duplicates: sends.reduce((n, s) => n + Math.max(0, (sent.get(s.text) ?? 0) - 1), 0),
			refused: countBy(sendAttempts.filter((a) => !isOk(a)).map((a) => a.status)),
		},
		...fanout,
		crashed_nodes: scene.crashedNodes(),
		seq_range: [from, to],
		drained,
	};
}

describe("the gateway loses nothing when its parts fail", () => {
	const scene = new FaultScene();
	const results: FaultFigures[] = [];

	beforeAll(() => scene.start(), 240_000);

	afterAll(async () => {
		// The final figures: late duplicates (a redelivery after a claim lease ran out) count too.
		for (const figures of results) {
			Object.assign(figures, await scene.fanout(figures.seq_range, new Map([...figures.sockets, ...figures.grpc].map((c) => [c.name, c.resubscribed]))).catch(() => ({})));
		}
		if (results.length > 0) {
			const text = writeReport({
				generated_at: new Date().toISOString(),
				cluster: NODE_SPECS.map((s) => `${s.name} (${s.services.join(", ")})`),
				load: `${UPDATES_PER_SECOND} Telegram updates/s over 8 connections to both api nodes, ${SENDS_PER_SECOND} REST sends/s; phases of ${BEFORE_MS / 1000} s load, the fault, ${AFTER_MS / 1000} s load`,
				faults: results,
			});
			console.log(text);
		}
		await scene.stop();
	}, 120_000);

	for (const fault of FAULTS) {
		it(`${fault.name}: every accepted update stored, every event delivered`, async () => {
			const { drained, ...figures } = await runPhase(scene, fault);
			results.push(figures);
			const context = JSON.stringify(figures);
			expect({ drained, crashed: figures.crashed_nodes }).toEqual({ drained: true, crashed: [] });
			expect({ accepted: figures.ingest.accepted, stored: figures.ingest.stored, lost: figures.ingest.lost, context }).toEqual({
				accepted: figures.ingest.sent,
				stored: figures.ingest.sent,
				lost: 0,
				context,
			});
			expect({ lost: figures.sends.lost, context }).toEqual({ lost: 0, context });
			// API.md: while a dependency is down the answer is 503 (Telegram and clients retry it); a
			// killed node answers nothing at all. A 500 would say the gateway itself failed.
			const refusals = { ingest: Object.keys(figures.ingest.refused), sends: Object.keys(figures.sends.refused) };
			const unexpected = (statuses: string[]) => statuses.filter((s) => s !== "503" && s !== "network");
			expect({ ingest: unexpected(refusals.ingest), sends: unexpected(refusals.sends) }).toEqual({ ingest: [], sends: [] });
			for (const consumer of [...figures.webhooks, ...figures.sockets, ...figures.grpc]) {
				expect({ name: consumer.name, lost: consumer.lost }).toEqual({ name: consumer.name, lost: 0 });
			}
			for (const stream of [...figures.sockets, ...figures.grpc]) {
				// API.md: a replay after since_seq has no gap and no duplicate, in order.
				expect({ name: stream.name, duplicates: stream.duplicates, out_of_order: stream.out_of_order }).toEqual({ name: stream.name, duplicates: 0, out_of_order: 0 });
			}
			expect(figures.ingest.first_ok_after_fault_ms).not.toBeNull();
		}, 240_000);
	}
});
