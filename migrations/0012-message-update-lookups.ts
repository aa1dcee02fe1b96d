/**
 * SQLite only: an index on messages.update_row_id. Removing a telegram_updates row (past the
 * de-duplication window, services/ingest/retention.ts) makes SQLite find the messages that point
 * at it (ON DELETE SET NULL); without an index that is a scan of the whole messages table per row
 * removed: 40 ms a row with 300,000 messages, 43 s for a batch of 1,000, against 6 ms with it.
 * MySQL/MariaDB created one with the foreign key (InnoDB requires it), so a second would only cost.
 */
import type { QueryInterface } from "sequelize";
import { addIndex, removeIndex } from "../lib/db/migration-helpers";

type Step = { context: QueryInterface };

function isSqlite(qi: QueryInterface): boolean {
	return qi.sequelize.getDialect() === "sqlite";
}

export async function up({ context: qi }: Step): Promise<void> {
	if (isSqlite(qi)) await addIndex(qi, "messages", ["update_row_id"]);
}

export async function down({ context: qi }: Step): Promise<void> {
	if (isSqlite(qi)) await removeIndex(qi, "messages", ["update_row_id"]);
}
