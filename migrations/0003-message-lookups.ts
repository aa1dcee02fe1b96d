/**
 * Messages by seq (the ingest transaction reads back the ids of the rows it just inserted by their
 * seq range), and a client key per chat so a retried POST /chats/:id/messages is stored once.
 */
import type { QueryInterface } from "sequelize";
import { addIndex, col } from "../lib/db/migration-helpers";

type Step = { context: QueryInterface };

export async function up({ context: qi }: Step): Promise<void> {
	const columns = await qi.describeTable("messages");
	if (!("client_key" in columns)) await qi.addColumn("messages", "client_key", col.string(128));
	await addIndex(qi, "messages", ["seq"], { unique: true });
	await addIndex(qi, "messages", ["chat_id", "client_key"], { unique: true });
}

/**
 * What reverting drops that applying again cannot bring back: the Idempotency-Keys of sent messages
 * (a client's retry after a later `up` would send its message again). Reverted only with --discard.
 */
export async function downLosses({ context: qi }: Step): Promise<string | null> {
	if (!("client_key" in (await qi.describeTable("messages")))) return null;
	const [rows] = await qi.sequelize.query("SELECT COUNT(*) AS n FROM messages WHERE client_key IS NOT NULL");
	const count = Number((rows as Array<{ n: number | string }>)[0]?.n ?? 0);
	return count > 0 ? `the Idempotency-Keys of ${count} message(s): a retry of one, after applying 0003 again, would send it a second time` : null;
}

export async function down({ context: qi }: Step): Promise<void> {
	const indexes = (await qi.showIndex("messages")) as Array<{ name: string }>;
	for (const name of ["uq_messages_seq", "uq_messages_chat_id_client_key"]) {
		if (indexes.some((i) => i.name === name)) await qi.removeIndex("messages", name);
	}
	const columns = await qi.describeTable("messages");
	// Its index is gone already; a plain DROP COLUMN keeps the table (see 0005 and 0007).
	if ("client_key" in columns) await qi.sequelize.query("ALTER TABLE messages DROP COLUMN client_key");
}
