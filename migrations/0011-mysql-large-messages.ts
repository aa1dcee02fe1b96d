/**
 * MySQL/MariaDB only (SQLite's TEXT has no such limit, nor case-insensitive comparison):
 * - a message's text, caption, entities and media (and their edits') become MEDIUMTEXT: TEXT holds
 *   64 KB, and a valid update well under the 1 MB body limit (a service message naming 400 new
 *   members, a long entity list) failed to store on every redelivery, stopping a polling bot for good;
 * - the client key of POST /chats/:id/messages (Idempotency-Key) compares case-sensitively, as on
 *   SQLite: under the default collation "Key-A" and "key-a" were one key.
 */
import type { QueryInterface } from "sequelize";

type Step = { context: QueryInterface };

const LARGE = ["text", "caption", "entities", "media"];

function isMysql(qi: QueryInterface): boolean {
	return qi.sequelize.getDialect() === "mysql";
}

export async function up({ context: qi }: Step): Promise<void> {
	if (!isMysql(qi)) return;
	for (const table of ["messages", "message_edits"]) {
		await qi.sequelize.query(`ALTER TABLE ${table} ${LARGE.map((name) => `MODIFY ${name} MEDIUMTEXT NULL`).join(", ")}`);
	}
	await qi.sequelize.query("ALTER TABLE messages MODIFY client_key VARCHAR(128) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NULL");
}

/** Why this migration cannot be reverted, or null (checked for every planned migration before any is reverted). */
export async function refuseDown({ context: qi }: Step): Promise<string | null> {
	if (!isMysql(qi)) return null;
	// Keys that differ only in case would collide under the case-insensitive unique index: refuse.
	const [rows] = await qi.sequelize.query(
		"SELECT COUNT(*) AS n FROM (SELECT LOWER(client_key) AS k FROM messages WHERE client_key IS NOT NULL GROUP BY LOWER(client_key) HAVING COUNT(*) > 1) AS clashes",
	);
	if (Number((rows as Array<{ n: number | string }>)[0]?.n ?? 0) > 0) return "some Idempotency-Keys differ only in letter case; the schema before 0011 cannot hold them apart";
	const [large] = await qi.sequelize.query(
		`SELECT (SELECT COUNT(*) FROM messages WHERE ${LARGE.map((name) => `LENGTH(${name}) > 65535`).join(" OR ")}) + (SELECT COUNT(*) FROM message_edits WHERE ${LARGE.map((name) => `LENGTH(${name}) > 65535`).join(" OR ")}) AS n`,
	);
	if (Number((large as Array<{ n: number | string }>)[0]?.n ?? 0) > 0) return "some messages hold more than TEXT's 64 KB; the schema before 0011 cannot hold them";
	return null;
}

export async function down({ context: qi }: Step): Promise<void> {
	if (!isMysql(qi)) return;
	const refusal = await refuseDown({ context: qi });
	if (refusal) throw new Error(refusal);
	await qi.sequelize.query("ALTER TABLE messages MODIFY client_key VARCHAR(128) CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci NULL");
	for (const table of ["messages", "message_edits"]) {
		await qi.sequelize.query(`ALTER TABLE ${table} ${LARGE.map((name) => `MODIFY ${name} TEXT NULL`).join(", ")}`);
	}
}
