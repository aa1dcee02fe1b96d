/**
 * After a transaction that appended events commits, its events go to every node at once, in one
 * message per batch: realtime and grpc nodes push them to their consumers. Delivery does not rely
 * on this (it reads the log), and consumers that miss a message fill the gap from the log.
 */
import type { ServiceBroker } from "moleculer";
import { metricsOf } from "../../lib/metrics";
import type { GatewayEvent } from "./event-log";

export const EVENTS_TOPIC = "gateway.events";

export interface EventsMessage {
	events: GatewayEvent[];
}

export async function publishEvents(broker: ServiceBroker, events: GatewayEvent[]): Promise<void> {
	if (events.length === 0) return;
	await broker.broadcast(EVENTS_TOPIC, { events } satisfies EventsMessage);
	const emitted = metricsOf(broker).eventsEmitted;
	for (const event of events) emitted.inc({ type: event.type });
}
