/**
 * Claims on outbound queue rows. The sender lease (one sender per bot) lives in shared state and can
 * pass to another node while a send is still on the wire (a stalled event loop, a Redis blip), so a
 * row is also claimed in the database before it is sent, and the claim is renewed while the row is
 * in hand: two senders never hold one row. A node killed mid-send leaves its row (and, to keep the
 * order, the rest of that chat) to others once the claim runs out.
 */
import type { Database } from "../../lib/db/connection";
import type { OutboundQueueItem } from "../../lib/db/models";
import { run } from "../../lib/db/raw";
import { groupCommitPer } from "../../lib/db/group-commit";

export const ROW_CLAIM_MS = 15_000;
const RENEW_EVERY_MS = 5_000;

/** How long another sender still holds the row; 0 when it is free or this sender's own. */
export function heldElsewhereFor(row: OutboundQueueItem, owner: string, now = Date.now()): number {
	if (row.lease_owner === null || row.lease_owner === owner || row.lease_until === null) return 0;
	return Math.max(0, new Date(row.lease_until).getTime() - now);
}

/** Through the database's writer (on SQLite, the one serial writer every transaction queues on). */
async function write(db: Database, sql: string, values: Array<string | number | Date>): Promise<number> {
	return (await db.rawTransaction((t) => run(db, t, sql, values))).changes;
}

interface Claim {
	owner: string;
	messageId: number;
}

/** Claims are written as group commits (lib/db/group-commit.ts): the claims every sender on this node makes at once share a transaction. */
const claimerOf = groupCommitPer((db: Database, claims: Claim[]) =>
	db.rawTransaction(async (t) => {
		const now = new Date();
		const until = new Date(now.getTime() + ROW_CLAIM_MS);
		const taken = new Map<Claim, boolean>();
		// In message id order, as other transactions lock queue rows: two batches never wait on each other in a circle.
		for (const claim of [...claims].sort((a, b) => a.messageId - b.messageId)) {
			const { changes } = await run(
				db,
				t,
				"UPDATE outbound_queue SET lease_owner = ?, lease_until = ? WHERE message_id = ? AND (lease_owner = ? OR lease_until IS NULL OR lease_until < ?)",
				[claim.owner, until, claim.messageId, claim.owner, now],
			);
			taken.set(claim, changes === 1);
		}
		return claims.map((claim) => taken.get(claim)!);
	}),
);

/** Takes the row unless another sender holds it; true when it is this sender's now. */
export function claimRow(db: Database, owner: string, messageId: number): Promise<boolean> {
	return claimerOf(db).submit({ owner, messageId });
}

/**
 * Keeps a claimed row this sender's while `work` runs (a slow send, a recording tried again while
 * the database is away): the claim is renewed every few seconds. A renewal that fails is tried
 * again at the next tick; meanwhile nobody else can claim the row through the same database.
 */
export async function whileClaimed<T>(db: Database, owner: string, messageId: number, work: () => Promise<T>): Promise<T> {
	const renew = setInterval(() => {
		void write(db, "UPDATE outbound_queue SET lease_until = ? WHERE message_id = ? AND lease_owner = ?", [
			new Date(Date.now() + ROW_CLAIM_MS),
			messageId,
			owner,
		]).catch(() => undefined);
	}, RENEW_EVERY_MS);
	renew.unref();
	try {
		return await work();
	} finally {
		clearInterval(renew);
	}
}

/** Puts a row this sender holds back on the queue, due after `delayMs`, claimed by nobody. */
export async function releaseRow(db: Database, owner: string, messageId: number, delayMs: number, change: { attempts?: number; last_error: string }): Promise<void> {
	await db.transaction((transaction) =>
		db.models.OutboundQueueItem.update(
			{ ...change, last_error: change.last_error.slice(0, 1000), next_attempt_at: new Date(Date.now() + delayMs), lease_owner: null, lease_until: null },
			{ where: { message_id: messageId, lease_owner: owner }, transaction },
		),
	);
}
