/**
 * Secrets of API keys that ended without a row left to say so (migrations/0015): the secret a
 * rotation replaced, and the keys of a deleted user (their rows go with the user). Presented again,
 * such a secret is refused as ended, like a revoked key, not as a guess: a client still polling with
 * it must not count against its address's bad-credential limit and lock out everyone behind it.
 */
import { QueryTypes, type Transaction } from "sequelize";
import type { Database } from "../../lib/db/connection";
import { deleteOlderThan } from "../../lib/db/prune";
import { DAY_MS, type RetentionJob } from "../../mixins/retention.mixin";

export type RetiredReason = "rotated" | "user_deleted";

/** Long enough for a forgotten client to be noticed and fixed; after it the secret is unknown again. */
export const RETIRED_SECRET_RETENTION_DAYS = 90;

export async function retireSecret(db: Database, secret: { prefix: string; key_hash: string }, reason: RetiredReason, transaction?: Transaction): Promise<void> {
	await db.sequelize.query("INSERT INTO retired_api_key_secrets (prefix, key_hash, reason, retired_at) VALUES (?, ?, ?, ?)", {
		replacements: [secret.prefix, secret.key_hash, reason, new Date()],
		transaction,
	});
}

/** Every key of a user about to be deleted, in the deleting transaction. */
export async function retireKeysOf(db: Database, userId: number, transaction: Transaction): Promise<void> {
	await db.sequelize.query(
		"INSERT INTO retired_api_key_secrets (prefix, key_hash, reason, retired_at) SELECT prefix, key_hash, 'user_deleted', ? FROM api_keys WHERE user_id = ?",
		{ replacements: [new Date(), userId], transaction },
	);
}

/** The retired secrets that had this prefix (a prefix is random: one, almost always). */
export function retiredWithPrefix(db: Database, prefix: string): Promise<Array<{ key_hash: string; reason: RetiredReason }>> {
	return db.sequelize.query("SELECT key_hash, reason FROM retired_api_key_secrets WHERE prefix = ? ORDER BY id DESC LIMIT 4", {
		replacements: [prefix],
		type: QueryTypes.SELECT,
	});
}

export const retiredSecretsRetention: RetentionJob = {
	table: "retired_api_key_secrets",
	cutoff: (_config, now) => new Date(now - RETIRED_SECRET_RETENTION_DAYS * DAY_MS),
	prune: (db, cutoff, options) => deleteOlderThan(db, { table: "retired_api_key_secrets", key: "id", time: "retired_at" }, cutoff, options),
};
