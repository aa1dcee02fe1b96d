/**
 * MySQL/MariaDB only: users.email compares exactly, as on SQLite. Under the default collation
 * (utf8mb4_unicode_ci) "jose@" and "josé@", or "strasse@" and "straße@", were one address, and the
 * second user was refused as a duplicate. Emails are stored lower-cased, so nothing else changes.
 */
import type { QueryInterface } from "sequelize";

type Step = { context: QueryInterface };

function isMysql(qi: QueryInterface): boolean {
	return qi.sequelize.getDialect() === "mysql";
}

export async function up({ context: qi }: Step): Promise<void> {
	if (!isMysql(qi)) return;
	await qi.sequelize.query("ALTER TABLE users MODIFY email VARCHAR(254) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NULL");
}

/** Why this migration cannot be reverted, or null (checked for every planned migration before any is reverted). */
export async function refuseDown({ context: qi }: Step): Promise<string | null> {
	if (!isMysql(qi)) return null;
	// Addresses the old collation counts as one would collide under its unique index: refuse.
	const [rows] = await qi.sequelize.query(
		"SELECT COUNT(*) AS n FROM (SELECT email COLLATE utf8mb4_unicode_ci AS k FROM users WHERE email IS NOT NULL GROUP BY k HAVING COUNT(*) > 1) AS clashes",
	);
	return Number((rows as Array<{ n: number | string }>)[0]?.n ?? 0) > 0 ? "some users' emails differ only in accents or letter forms (jose/josé); the schema before 0013 cannot hold them apart" : null;
}

export async function down({ context: qi }: Step): Promise<void> {
	if (!isMysql(qi)) return;
	const refusal = await refuseDown({ context: qi });
	if (refusal) throw new Error(refusal);
	await qi.sequelize.query("ALTER TABLE users MODIFY email VARCHAR(254) CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci NULL");
}
