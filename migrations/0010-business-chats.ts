/**
 * Chats of connected business accounts: Telegram says a business message's chat is independent of the
 * bot's own chat that may share its id (and two business accounts may each talk to one customer), and
 * numbers its messages apart. A chat is now (bot, Telegram id, business connection), '' for the bot's
 * own chats: NOT NULL, because a unique index would let any number of NULLs in. Case-sensitive on
 * MySQL, where the default collation would take two connection ids differing in case for one.
 */
import type { QueryInterface } from "sequelize";
import { addIndex, removeIndex } from "../lib/db/migration-helpers";

type Step = { context: QueryInterface };

const KEY = ["bot_id", "telegram_id", "business_connection_id"];
const OLD_KEY = ["bot_id", "telegram_id"];

export async function up({ context: qi }: Step): Promise<void> {
	const columns = await qi.describeTable("chats");
	if (!("business_connection_id" in columns)) {
		const collation = qi.sequelize.getDialect() === "mysql" ? " CHARACTER SET utf8mb4 COLLATE utf8mb4_bin" : "";
		await qi.sequelize.query(`ALTER TABLE chats ADD COLUMN business_connection_id VARCHAR(128)${collation} NOT NULL DEFAULT ''`);
	}
	await addIndex(qi, "chats", KEY, { unique: true });
	await removeIndex(qi, "chats", OLD_KEY, { unique: true });
}

/** Why this migration cannot be reverted, or null (checked for every planned migration before any is reverted). */
export async function refuseDown({ context: qi }: Step): Promise<string | null> {
	const columns = await qi.describeTable("chats");
	if (!("business_connection_id" in columns)) return null;
	const [rows] = await qi.sequelize.query("SELECT COUNT(*) AS n FROM chats WHERE business_connection_id <> ''");
	const count = Number((rows as Array<{ n: number | string }>)[0]?.n ?? 0);
	return count > 0 ? `${count} chat(s) of business accounts exist; the schema before 0010 cannot hold them beside the bots' own chats. Delete them first.` : null;
}

export async function down({ context: qi }: Step): Promise<void> {
	const columns = await qi.describeTable("chats");
	if (!("business_connection_id" in columns)) return;
	const refusal = await refuseDown({ context: qi });
	if (refusal) throw new Error(refusal);
	await addIndex(qi, "chats", OLD_KEY, { unique: true });
	await removeIndex(qi, "chats", KEY, { unique: true });
	// A plain DROP COLUMN (see 0009): Sequelize's SQLite removeColumn copies and drops the table.
	await qi.sequelize.query("ALTER TABLE chats DROP COLUMN business_connection_id");
}
