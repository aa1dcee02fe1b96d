/**
 * When Telegram saw a chat as its row describes it (title, username, names, type): the date of the
 * update the details came from (services/ingest/store.ts). An older update, redelivered after newer
 * ones, then no longer rolls the details back. Null for rows stored before: the next update sets it.
 */
import type { QueryInterface } from "sequelize";
import { col } from "../lib/db/migration-helpers";

type Step = { context: QueryInterface };

export async function up({ context: qi }: Step): Promise<void> {
	const columns = await qi.describeTable("chats");
	if (!("details_date" in columns)) await qi.addColumn("chats", "details_date", col.time());
}

export async function down({ context: qi }: Step): Promise<void> {
	const columns = await qi.describeTable("chats");
	// A plain DROP COLUMN on both databases: Sequelize's SQLite removeColumn copies and drops the
	// table, which would cascade to the chat's messages, grants and deliveries (see 0005 and 0007).
	if ("details_date" in columns) await qi.sequelize.query("ALTER TABLE chats DROP COLUMN details_date");
}
