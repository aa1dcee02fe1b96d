/**
 * For a process outside the cluster that changed what running nodes cache (the CLI runs auth's
 * actions in a broker of its own, without the transporter): the events those actions broadcast
 * locally are broadcast again to the cluster, as the nodes' own auth service would have. The
 * process joins briefly as a node that runs no service, waits until it has heard from the nodes
 * that listen, broadcasts, and leaves.
 */
import { randomBytes } from "node:crypto";
import { ServiceBroker, type ServiceSchema } from "moleculer";
import { createBrokerOptions } from "../moleculer.config";
import type { Runtime } from "./runtime";

export interface Announcement {
	event: string;
	payload: unknown;
}

/** A local service that keeps what the given events carried, to announce it afterwards. */
export function recorderOf(events: readonly string[], into: Announcement[]): ServiceSchema {
	return {
		name: "announcement-recorder",
		events: Object.fromEntries(events.map((event) => [event, (ctx: { params: unknown }) => void into.push({ event, payload: ctx.params })])),
	};
}

/** How long the transporter may take to accept the newcomer. */
const CONNECT_MS = 5_000;
/** How long to wait for the cluster's nodes to answer the newcomer's discovery. */
const DISCOVERY_MS = 3_000;
/** Nodes answer a discovery within milliseconds of each other: once one has, this long for the rest. */
const SETTLE_MS = 500;

/**
 * Broadcasts the announcements to every node of the cluster that listens to them; resolves with
 * how many nodes that was (0 when none runs: nodes that start later read the database anyway).
 */
export async function announceToCluster(runtime: Runtime, announcements: readonly Announcement[]): Promise<number> {
	if (!runtime.config.transporter || announcements.length === 0) return 0;
	const broker = new ServiceBroker(
		createBrokerOptions(runtime, {
			nodeID: `announcer-${process.pid}-${randomBytes(3).toString("hex")}`,
			metadata: { services: [] },
			logger: false,
			cacher: null,
			metrics: { enabled: false },
			// One attempt: a one-shot command must not wait for NATS to come back (Moleculer would retry for ever).
			transporter: { type: "NATS", options: { url: runtime.config.transporter, maxReconnectAttempts: 0 } },
			transit: { disableReconnect: true },
		}),
	);
	let timer: NodeJS.Timeout | undefined;
	try {
		await Promise.race([
			broker.start(),
			new Promise<never>((_, reject) => {
				timer = setTimeout(() => reject(new Error(`the transporter did not accept a connection within ${CONNECT_MS / 1000} s`)), CONNECT_MS);
			}),
		]);
	} catch (err) {
		await broker.stop().catch(() => undefined);
		throw err;
	} finally {
		clearTimeout(timer);
	}
	try {
		const names = [...new Set(announcements.map((a) => a.event))];
		const listeners = () => new Set(names.flatMap((name) => (broker.registry.events.getAllEndpoints(name) as Array<{ id: string }>).map((ep) => ep.id)));
		const deadline = Date.now() + DISCOVERY_MS;
		let seen = 0;
		let settledAt = Infinity;
		while (Date.now() < Math.min(deadline, settledAt)) {
			const count = listeners().size;
			if (count !== seen) {
				seen = count;
				settledAt = Date.now() + SETTLE_MS;
			}
			await new Promise((resolve) => setTimeout(resolve, 50));
		}
		for (const { event, payload } of announcements) await broker.broadcast(event, payload);
		return listeners().size;
	} finally {
		await broker.stop();
	}
}
