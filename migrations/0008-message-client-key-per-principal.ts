/**
 * A client key (the POST's Idempotency-Key, prefixed with its principal: services/chats.service.ts)
 * belongs to one message, whatever the chat: used again for another chat it is a conflict, not a
 * second message. (client_key) unique replaces 0003's (chat_id, client_key), which let the same key
 * queue one message per chat.
 */
import { QueryTypes, type QueryInterface } from "sequelize";
import { addIndex, removeIndex } from "../lib/db/migration-helpers";

type Step = { context: QueryInterface };

/** Ids per UPDATE: a statement's placeholders stay well under SQLite's and MySQL's limits. */
const CHUNK = 500;

export async function up({ context: qi }: Step): Promise<void> {
	// Keys already used for several chats keep their first message; the later ones lose the key
	// (they were sent, and a retry naming the key now gets the first message's conflict).
	const later = await qi.sequelize.query<{ id: number }>(
		`SELECT m.id FROM messages m
		   JOIN (SELECT client_key, MIN(id) AS first_id FROM messages WHERE client_key IS NOT NULL GROUP BY client_key HAVING COUNT(*) > 1) d
		     ON m.client_key = d.client_key AND m.id <> d.first_id`,
		{ type: QueryTypes.SELECT },
	);
	const ids = later.map((row) => Number(row.id));
	for (let i = 0; i < ids.length; i += CHUNK) {
		const chunk = ids.slice(i, i + CHUNK);
		await qi.sequelize.query(`UPDATE messages SET client_key = NULL WHERE id IN (${chunk.map(() => "?").join(", ")})`, { replacements: chunk });
	}
	await addIndex(qi, "messages", ["client_key"], { unique: true });
	await removeIndex(qi, "messages", ["chat_id", "client_key"], { unique: true });
}

export async function down({ context: qi }: Step): Promise<void> {
	// A key unique on its own is unique per chat too: this index always builds.
	await addIndex(qi, "messages", ["chat_id", "client_key"], { unique: true });
	await removeIndex(qi, "messages", ["client_key"], { unique: true });
}
