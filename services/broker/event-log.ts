/**
 * The event log. Every stored event gets the next `seq` from the `sequences` row named "events".
 * The UPDATE that allocates it holds that row's lock until the transaction commits, so seqs become
 * visible in order: a reader that sees seq N can trust that every seq below N is already readable.
 * Replay and live fan-out rely on exactly that.
 */
import { QueryTypes, type Transaction } from "sequelize";
import type { Database } from "../../lib/db/connection";
import { all, insertRows, run } from "../../lib/db/raw";
import { grantedChatIdsSql } from "../auth/grants";

export type EventType = "new_message" | "edited_message" | "outgoing_message" | "update";

/** What socket.io, WebSocket, gRPC and webhook consumers receive (webhooks add their envelope). */
export interface GatewayEvent {
	type: EventType;
	seq: number;
	bot_id: number;
	chat_id: number | null;
	message?: Record<string, unknown>;
	update?: unknown;
	/** For `update` events: the Telegram kind (callback_query, chat_member, ...). */
	update_kind?: string;
	/** ISO time the event was stored. */
	created_at: string;
}

export interface EventDraft {
	type: EventType;
	bot_id: number;
	chat_id: number | null;
	message_id: number | null;
	/** Builds the payload once the seq is known (a new message carries its own seq). */
	payload(seq: number): Omit<GatewayEvent, "seq" | "created_at">;
}

/**
 * Reserves `count` consecutive seqs inside `t`; returns the first. On MySQL the row lock this takes
 * makes every other writer of the log wait until `t` commits, so callers take it as late as they
 * can, and it costs one round trip: LAST_INSERT_ID(expr) hands the new value back in the UPDATE's
 * own answer.
 */
export async function allocateSeqs(db: Database, t: Transaction, count: number): Promise<number> {
	let last: number;
	if (db.dialect === "sqlite") {
		const rows = await all<{ value: number | string }>(db, t, "UPDATE sequences SET value = value + ? WHERE name = 'events' RETURNING value", [count]);
		last = Number(rows[0]?.value);
	} else {
		const result = await run(db, t, "UPDATE sequences SET value = LAST_INSERT_ID(value + ?) WHERE name = 'events'", [count]);
		last = result.changes === 1 ? result.insertId : Number.NaN;
	}
	if (!Number.isSafeInteger(last)) throw new Error("the events sequence row is missing: run the migrations");
	return last - count + 1;
}

/**
 * Hands back the last `count` seqs this transaction allocated and has not used. Sound only inside
 * that transaction: it still holds the sequence row, so nobody allocated after it.
 */
export async function releaseSeqs(db: Database, t: Transaction, count: number): Promise<void> {
	await run(db, t, "UPDATE sequences SET value = value - ? WHERE name = 'events'", [count]);
}

const EVENT_COLUMNS = ["seq", "type", "bot_id", "chat_id", "message_id", "payload", "created_at"] as const;

/** Appends events with seqs already allocated by allocateSeqs (first, first + 1, ...). */
export async function insertEvents(
	db: Database,
	t: Transaction,
	firstSeq: number,
	drafts: EventDraft[],
	now: Date = new Date(),
): Promise<GatewayEvent[]> {
	if (drafts.length === 0) return [];
	const createdAt = now.toISOString();
	const events = drafts.map((draft, i) => ({ ...draft.payload(firstSeq + i), seq: firstSeq + i, created_at: createdAt }) as GatewayEvent);
	await insertRows(
		db,
		t,
		"events",
		EVENT_COLUMNS,
		events.map((event, i) => [event.seq, event.type, drafts[i]!.bot_id, drafts[i]!.chat_id, drafts[i]!.message_id, JSON.stringify(event), now]),
	);
	return events;
}

/** allocateSeqs + insertEvents, for callers that need no seq before writing their own rows. */
export async function appendEvents(db: Database, t: Transaction, drafts: EventDraft[]): Promise<GatewayEvent[]> {
	if (drafts.length === 0) return [];
	const first = await allocateSeqs(db, t, drafts.length);
	return insertEvents(db, t, first, drafts);
}

export interface ReplayQuery {
	afterSeq: number;
	/** At most this seq (inclusive): lets a reader fill a known gap. */
	untilSeq?: number;
	chatIds?: number[];
	/** Only chats this user or API key holds can_read on (by its own grants, as auth.chatAccess reads them). */
	readableBy?: Reader;
	botId?: number;
	limit: number;
}

/** A non-admin principal, as its grants name it: an API key's are its own, not its owner's. */
export interface Reader {
	type: "user" | "api_key";
	id: number;
}

/**
 * A replay of a bot's events for a reader of a few of its chats walks the chat index on SQLite. Its
 * planner has no statistics here (no ANALYZE) and took the bot's index, reading the bot's whole log
 * after the seq to find a few chats' events (one quiet chat of a 300,000-event bot: 60-75 ms a
 * page). Through the chat index SQLite stops each chat's range once the page is full, so a page
 * costs at most FEW_CHATS x its limit rows whatever the bot's volume. A reader of more chats may
 * read most of the bot, where the bot's index is the better walk: left to the planner, as are
 * replays without a bot (it takes the chat index for those). `+bot_id` keeps it off the bot index.
 * MySQL's planner has statistics and is left to itself.
 */
const FEW_CHATS = 32;

async function readsFewChatsOfBot(db: Database, query: ReplayQuery): Promise<boolean> {
	if (db.dialect !== "sqlite" || query.botId === undefined) return false;
	if (query.chatIds) return query.chatIds.length <= FEW_CHATS;
	if (!query.readableBy) return false;
	const granted = grantedChatIdsSql(db, query.readableBy, "can_read");
	const [row] = await db.sequelize.query<{ n: number }>(
		`SELECT COUNT(*) AS n FROM (SELECT id FROM chats WHERE bot_id = :botId AND id IN (${granted}) LIMIT ${FEW_CHATS + 1}) AS few`,
		{ type: QueryTypes.SELECT, replacements: { botId: query.botId } },
	);
	return Number(row?.n ?? 0) <= FEW_CHATS;
}

export async function readEvents(db: Database, query: ReplayQuery): Promise<GatewayEvent[]> {
	if (query.chatIds?.length === 0) return [];
	const fewChatsOfBot = await readsFewChatsOfBot(db, query);
	const where: string[] = ["seq > :afterSeq"];
	const replacements: Record<string, unknown> = { afterSeq: query.afterSeq, limit: query.limit };
	if (query.untilSeq !== undefined) {
		where.push("seq <= :untilSeq");
		replacements.untilSeq = query.untilSeq;
	}
	if (query.chatIds) {
		where.push("chat_id IN (:chatIds)");
		replacements.chatIds = query.chatIds;
	}
	if (query.readableBy) {
		// A subquery, not an id list: a principal may read any number of chats, and a list would be
		// inlined into the SQL text (and cross the transporter) whole.
		where.push(`chat_id IN (${grantedChatIdsSql(db, query.readableBy, "can_read")})`);
	}
	if (query.botId !== undefined) {
		where.push(`${fewChatsOfBot ? "+bot_id" : "bot_id"} = :botId`);
		replacements.botId = query.botId;
	}
	const rows = await db.sequelize.query<{ payload: string }>(
		`SELECT payload FROM events WHERE ${where.join(" AND ")} ORDER BY seq LIMIT :limit`,
		{ type: QueryTypes.SELECT, replacements },
	);
	return rows.map((row) => JSON.parse(row.payload) as GatewayEvent);
}

/**
 * The highest seq committed so far (0 for an empty log). Read in `heldIn`, the head is held until
 * that transaction ends: no seq is handed out meanwhile (MySQL; SQLite has one writer anyway), so
 * every event after it commits after whatever the transaction writes.
 */
export async function headSeq(db: Database, heldIn?: Transaction): Promise<number> {
	const hold = heldIn && db.dialect === "mysql" ? " LOCK IN SHARE MODE" : "";
	const rows = await db.sequelize.query<{ value: number | string }>(`SELECT value FROM sequences WHERE name = 'events'${hold}`, {
		type: QueryTypes.SELECT,
		transaction: heldIn,
	});
	return Number(rows[0]?.value ?? 0);
}

/** Where the log stands: its counter (the last seq handed out) and the highest seq it still holds. */
export async function seqStanding(db: Database): Promise<{ counter: number; highestStored: number }> {
	const [row] = await db.sequelize.query<{ highest: number | string | null }>("SELECT MAX(seq) AS highest FROM events", { type: QueryTypes.SELECT });
	return { counter: await headSeq(db), highestStored: Number(row?.highest ?? 0) };
}

/**
 * Makes every seq handed out from now on come after `floor`; never lowers the counter. After a
 * restore from a backup the counter is the backup's, and seqs consumers already saw after it would
 * be handed out again: webhook receivers would drop the new events as duplicates (they de-duplicate
 * on evt_<seq>), and clients resuming after the seq they saw would skip them.
 */
export async function raiseSeqFloor(db: Database, floor: number): Promise<{ before: number; after: number }> {
	const before = await headSeq(db);
	await db.sequelize.query("UPDATE sequences SET value = ? WHERE name = 'events' AND value < ?", { replacements: [floor, floor] });
	return { before, after: await headSeq(db) };
}
