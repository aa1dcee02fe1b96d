/**
 * Where a webhook's events start: the event log's head seq when it was created. An event is the
 * webhook's when its seq comes after it. Comparing the event's stored time with the webhook's
 * creation time lost events in a cluster: an event's time is taken on its ingest node before the
 * transaction may wait for the log's lock, the webhook's on another node with its own clock. Null for
 * webhooks created before: their creation time still decides.
 */
import type { QueryInterface } from "sequelize";
import { col } from "../lib/db/migration-helpers";

type Step = { context: QueryInterface };

export async function up({ context: qi }: Step): Promise<void> {
	const columns = await qi.describeTable("webhooks");
	if (!("after_seq" in columns)) await qi.addColumn("webhooks", "after_seq", col.bigint());
}

export async function down({ context: qi }: Step): Promise<void> {
	const columns = await qi.describeTable("webhooks");
	// A plain DROP COLUMN on both databases: Sequelize's SQLite removeColumn copies and drops the
	// table, which would cascade to the webhook's deliveries (see 0009).
	if ("after_seq" in columns) await qi.sequelize.query("ALTER TABLE webhooks DROP COLUMN after_seq");
}
