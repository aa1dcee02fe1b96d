/**
 * MySQL/MariaDB only: chats.business_connection_id compares exactly, trailing spaces included, as on
 * SQLite. Under utf8mb4_bin (0010) the two servers pad: "BizConn" and "BizConn " were one key, so the
 * second connection's chat upserted onto the first one's row, was then not found by its exact id, and
 * the batch failed for good: the bot's polling (or Telegram's pushes) stuck on that update. A NO PAD
 * binary collation keeps them two chats; MariaDB and MySQL 8 name it differently.
 */
import type { QueryInterface } from "sequelize";

type Step = { context: QueryInterface };

const NO_PAD_COLLATIONS = ["utf8mb4_nopad_bin", "utf8mb4_0900_bin"];

async function noPadCollation(qi: QueryInterface): Promise<string> {
	const [rows] = await qi.sequelize.query(`SHOW COLLATION WHERE Collation IN (${NO_PAD_COLLATIONS.map((c) => `'${c}'`).join(", ")})`);
	const available = new Set((rows as Array<{ Collation: string }>).map((row) => row.Collation));
	const collation = NO_PAD_COLLATIONS.find((c) => available.has(c));
	if (!collation) throw new Error(`the database server has none of the collations ${NO_PAD_COLLATIONS.join(", ")}: MariaDB 10.2+ or MySQL 8 is needed`);
	return collation;
}

const column = (collation: string) => `ALTER TABLE chats MODIFY business_connection_id VARCHAR(128) CHARACTER SET utf8mb4 COLLATE ${collation} NOT NULL DEFAULT ''`;

export async function up({ context: qi }: Step): Promise<void> {
	if (qi.sequelize.getDialect() !== "mysql") return;
	await qi.sequelize.query(column(await noPadCollation(qi)));
}

/** Why this migration cannot be reverted, or null (checked for every planned migration before any is reverted). */
export async function refuseDown({ context: qi }: Step): Promise<string | null> {
	if (qi.sequelize.getDialect() !== "mysql") return null;
	// Chats the padding collation counts as one would collide under the unique key: refuse.
	const [rows] = await qi.sequelize.query(
		"SELECT COUNT(*) AS n FROM (SELECT bot_id, telegram_id, business_connection_id COLLATE utf8mb4_bin AS k FROM chats GROUP BY bot_id, telegram_id, k HAVING COUNT(*) > 1) AS clashes",
	);
	return Number((rows as Array<{ n: number | string }>)[0]?.n ?? 0) > 0 ? "some chats' business connection ids differ only in trailing spaces; the schema before 0016 cannot hold them apart" : null;
}

export async function down({ context: qi }: Step): Promise<void> {
	if (qi.sequelize.getDialect() !== "mysql") return;
	const refusal = await refuseDown({ context: qi });
	if (refusal) throw new Error(refusal);
	await qi.sequelize.query(column("utf8mb4_bin"));
}
