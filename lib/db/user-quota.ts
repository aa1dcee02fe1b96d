/**
 * Per-user caps (API keys, webhooks) counted and written in one transaction. On MySQL the user's
 * row is locked first, so two requests racing on any nodes take turns and the second counts what
 * the first wrote; the count is then the transaction's first plain read, whose snapshot is taken
 * after the lock. SQLite runs one write transaction at a time anyway.
 */
import type { Transaction } from "sequelize";
import type { Database } from "./connection";

export interface UserQuota {
	userId: number;
	limit: number;
	/** What counts against the limit now. */
	count(t: Transaction): Promise<number>;
	/** The error when the user is at its limit. */
	refusal(): Error;
}

/** Runs `work` (which adds one more of what `count` counts) only while the user is under its limit; no user (0): no limit. */
export async function withinUserQuota<T>(db: Database, quota: UserQuota, work: (t: Transaction) => Promise<T>): Promise<T> {
	return db.transaction(async (t) => {
		if (quota.userId > 0) {
			if (db.dialect === "mysql") await db.sequelize.query("SELECT id FROM users WHERE id = ? FOR UPDATE", { replacements: [quota.userId], transaction: t });
			if ((await quota.count(t)) >= quota.limit) throw quota.refusal();
		}
		return work(t);
	});
}
