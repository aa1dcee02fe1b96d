/**
 * Finding and claiming a webhook's due deliveries must not read its delivered history, which only
 * grows (services/delivery/claims.ts). (webhook_id, status, next_attempt_at) finds what is due in
 * the order it is claimed, replacing 0004's (webhook_id, status, event_seq); the in-order check
 * ("an earlier event of this chat still waiting?") looks waiting rows up by status instead of
 * walking every earlier delivery of the chat: (webhook_id, chat_id, status, event_seq) replaces
 * (webhook_id, chat_id, event_seq).
 */
import type { QueryInterface } from "sequelize";
import { addIndex, removeIndex } from "../lib/db/migration-helpers";

type Step = { context: QueryInterface };

const TABLE = "webhook_deliveries";

export async function up({ context: qi }: Step): Promise<void> {
	await addIndex(qi, TABLE, ["webhook_id", "status", "next_attempt_at"]);
	await addIndex(qi, TABLE, ["webhook_id", "chat_id", "status", "event_seq"]);
	await removeIndex(qi, TABLE, ["webhook_id", "chat_id", "event_seq"]);
	await removeIndex(qi, TABLE, ["webhook_id", "status", "event_seq"]);
}

export async function down({ context: qi }: Step): Promise<void> {
	await addIndex(qi, TABLE, ["webhook_id", "status", "event_seq"]);
	await addIndex(qi, TABLE, ["webhook_id", "chat_id", "event_seq"]);
	await removeIndex(qi, TABLE, ["webhook_id", "chat_id", "status", "event_seq"]);
	await removeIndex(qi, TABLE, ["webhook_id", "status", "next_attempt_at"]);
}
