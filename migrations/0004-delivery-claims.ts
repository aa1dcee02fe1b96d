/** Delivery workers claim a webhook's due deliveries in event order: an index for exactly that. */
import type { QueryInterface } from "sequelize";
import { addIndex, removeIndex } from "../lib/db/migration-helpers";

type Step = { context: QueryInterface };

export async function up({ context: qi }: Step): Promise<void> {
	await addIndex(qi, "webhook_deliveries", ["webhook_id", "status", "event_seq"]);
}

export async function down({ context: qi }: Step): Promise<void> {
	await removeIndex(qi, "webhook_deliveries", ["webhook_id", "status", "event_seq"]);
}
