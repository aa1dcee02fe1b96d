/**
 * The secrets of API keys that no longer exist as they were: replaced by a rotation, or deleted with
 * their user. A client still presenting one gets a 401 that says it ended ("revoked",
 * "user_disabled"), and it does not count as a bad credential against its address: without these
 * rows such a secret looked like a guess, and a client polling with it locked out every other client
 * behind the same address. Only the argon2 hash is kept, found by the key's prefix.
 */
import type { QueryInterface } from "sequelize";
import { addIndex, col, createTable } from "../lib/db/migration-helpers";

type Step = { context: QueryInterface };

export async function up({ context: qi }: Step): Promise<void> {
	await createTable(qi, "retired_api_key_secrets", {
		id: col.id(),
		prefix: col.string(16, false),
		key_hash: col.string(255, false),
		reason: col.string(32, false),
		retired_at: col.time(false),
	});
	await addIndex(qi, "retired_api_key_secrets", ["prefix"]);
	await addIndex(qi, "retired_api_key_secrets", ["retired_at"]);
}

/**
 * What reverting drops that applying again cannot bring back: the record of ended API key secrets
 * (one presented again would count as a guess against its address). Reverted only with --discard.
 */
export async function downLosses({ context: qi }: Step): Promise<string | null> {
	const [rows] = await qi.sequelize.query("SELECT COUNT(*) AS n FROM retired_api_key_secrets");
	const count = Number((rows as Array<{ n: number | string }>)[0]?.n ?? 0);
	return count > 0 ? `the record of ${count} API key secret(s) replaced by rotation or ended with their user: presented again, one would read as an unknown key (a guess against its address), not "revoked"` : null;
}

export async function down({ context: qi }: Step): Promise<void> {
	await qi.dropTable("retired_api_key_secrets");
}
