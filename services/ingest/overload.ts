/**
 * A Batcher's `maxQueued.full` for Telegram pushes (the api node's calls to ingest, ingest's group
 * commit): the push is counted as refused "overloaded" and answered 503 Retry-After 1, and Telegram
 * redelivers it later.
 */
import type { ServiceBroker } from "moleculer";
import { fail, type GatewayError } from "../../lib/errors";
import { metricsOf } from "../../lib/metrics";

export function refuseOverloaded(broker: ServiceBroker, what: string): () => GatewayError {
	const rejected = metricsOf(broker).updatesRejected;
	return () => {
		rejected.inc({ reason: "overloaded" });
		return fail.unavailable(what, 1);
	};
}
