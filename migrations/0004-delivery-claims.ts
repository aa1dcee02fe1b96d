/** Delivery workers claim a webhook's due deliveries in event order: an index for exactly that. */
import type { QueryInterface } from "sequelize";
import { addIndex } from "../lib/db/migration-helpers";

type Step = { context: QueryInterface };

export async function up({ context: qi }: Step): Promise<void> {
	await addIndex(qi, "webhook_deliveries", ["webhook_id", "status", "event_seq"]);
}

export async function down({ context: qi }: Step): Promise<void> {
	const indexes = (await qi.showIndex("webhook_deliveries")) as Array<{ name: string }>;
	if (indexes.some((i) => i.name === "ix_webhook_deliveries_webhook_id_status_event_seq")) {
		await qi.removeIndex("webhook_deliveries", "ix_webhook_deliveries_webhook_id_status_event_seq");
	}
}
