/**
 * Retention of the event log, opt-in (EVENT_RETENTION_DAYS, 0 by default: kept for ever). What it
 * costs: replay (socket.io, WebSocket and gRPC `since_seq`, a webhook's replay `since` /
 * `since_seq`) starts at the oldest event still kept, and `update` events (callback queries, member
 * changes, ...) are stored nowhere else. Chat history (REST, gRPC) reads messages, which are kept.
 * A webhook delivery still waiting for a removed event is made dead with that reason
 * (services/delivery/worker.ts).
 */
import { deleteOlderThan } from "../../lib/db/prune";
import { read } from "../../lib/db/raw";
import { daysBefore, type RetentionJob } from "../../mixins/retention.mixin";

export const eventsRetention: RetentionJob = {
	table: "events",
	cutoff: (config, now) => daysBefore(now, config.eventRetentionDays),
	async prune(db, cutoff, options) {
		// Events the webhook dispatcher has not turned into deliveries yet stay, however old (the
		// delivery nodes were all down): removed, every webhook would miss them without a trace.
		const [cursor] = await read<{ value: number | string }>(db, "SELECT value FROM sequences WHERE name = 'webhook_dispatch'");
		const dispatched = Number(cursor?.value ?? 0);
		return deleteOlderThan(db, { table: "events", key: "seq", time: "created_at", where: { sql: "seq <= ?", values: [dispatched] } }, cutoff, options);
	},
};
