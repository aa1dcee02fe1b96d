/**
 * An outgoing message keeps a fingerprint of the request that queued it next to its client key
 * (the POST's Idempotency-Key): the same key sent again with a different text or options is a
 * conflict, not a silent answer with the first message.
 */
import type { QueryInterface } from "sequelize";
import { col } from "../lib/db/migration-helpers";

type Step = { context: QueryInterface };

export async function up({ context: qi }: Step): Promise<void> {
	const columns = await qi.describeTable("messages");
	if (!("client_request" in columns)) await qi.addColumn("messages", "client_request", col.string(64));
}

export async function down({ context: qi }: Step): Promise<void> {
	const columns = await qi.describeTable("messages");
	// A plain DROP COLUMN on both databases: Sequelize's SQLite removeColumn copies and drops the
	// table, which cascades to message_edits and outbound_queue and loses its indexes (see 0005).
	if ("client_request" in columns) await qi.sequelize.query("ALTER TABLE messages DROP COLUMN client_request");
}
