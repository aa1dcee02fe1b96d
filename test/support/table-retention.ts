/**
 * The retention scenario of the tables that grow with traffic, run on SQLite (unit, integration)
 * and on MariaDB (cluster): rows of several ages on both sides of each table's cutoff, and which of
 * them a prune keeps, with the default settings and EVENT_RETENTION_DAYS=30. Time is moved by
 * backdating rows, never by waiting.
 */
import { randomBytes } from "node:crypto";
import { QueryTypes } from "sequelize";
import type { GatewayConfig } from "../../lib/config";
import type { Database } from "../../lib/db/connection";
import { insertRows, run } from "../../lib/db/raw";
import { allocateSeqs, insertEvents } from "../../services/broker/event-log";
import { insertBot, insertChat, updateDraft } from "./database";

const HOUR_MS = 60 * 60_000;
const DAY_MS = 24 * HOUR_MS;

/** The environment (and the configuration it gives) the scenario's expectations assume. */
export const SCENARIO_ENV = { EVENT_RETENTION_DAYS: "30" };
export const SCENARIO_CONFIG = { telegramUpdateRetentionHours: 72, securityEventRetentionDays: 90, eventRetentionDays: 30 } as GatewayConfig;

export const PRUNED_TABLES = ["telegram_updates", "security_events", "refresh_tokens", "events"] as const;
export type PrunedTableName = (typeof PRUNED_TABLES)[number];

export interface Seeded {
	/** Per table, the keys of the rows seeded, and of those a prune keeps. */
	rows: Record<PrunedTableName, { all: number[]; kept: number[] }>;
	/** One message per seeded update: [message id, its update's id]. */
	messages: Array<[number, number]>;
}

/** [received hours ago, kept by a 72-hour window] */
const UPDATES: Array<[number, boolean]> = [
	[100, false],
	[73, false],
	[71, true],
	[1, true],
];
/** [created days ago, kept for 90 days] */
const SECURITY_EVENTS: Array<[number, boolean]> = [
	[120, false],
	[91, false],
	[89, true],
	[0, true],
];
/** [expires in hours (negative: expired that long ago), kept: until a day after it expires] */
const REFRESH_TOKENS: Array<[number, boolean]> = [
	[-30 * 24, false],
	[-25, false],
	[-23, true],
	[6 * 24, true],
];
/** [created days ago, reached by the webhook dispatcher, kept for 30 days] */
const EVENTS: Array<[number, boolean, boolean]> = [
	[40, true, false],
	[31, true, false],
	[31, false, true], // old enough, but no webhook delivery was made for it yet
	[29, false, true],
	[0, false, true],
];

const selectIds = async (db: Database, sql: string, values: unknown[]) =>
	(await db.sequelize.query<{ id: number }>(sql, { replacements: values, type: QueryTypes.SELECT })).map((row) => Number(row.id));

/** Seeds the scenario, oldest rows first (as traffic would); moves the webhook dispatcher's cursor. */
export async function seedAgedRows(db: Database): Promise<Seeded> {
	const now = Date.now();
	const tag = randomBytes(6).toString("hex");
	const bot = await insertBot(db);
	const chat = await insertChat(db, bot.id, 31_000 + Math.floor(Math.random() * 1_000_000));
	const user = await db.models.User.create({ username: `retention_${tag}`, email: null, password_hash: "unused", last_login_at: null });
	const rows = Object.fromEntries(PRUNED_TABLES.map((table) => [table, { all: [] as number[], kept: [] as number[] }])) as Seeded["rows"];
	const add = (table: PrunedTableName, id: number, kept: boolean) => {
		rows[table].all.push(id);
		if (kept) rows[table].kept.push(id);
	};

	const messages: Seeded["messages"] = [];
	for (const [i, [hoursAgo, kept]] of UPDATES.entries()) {
		const at = new Date(now - hoursAgo * HOUR_MS);
		await db.rawTransaction((t) => insertRows(db, t, "telegram_updates", ["bot_id", "update_id", "kind", "payload", "batch_id", "received_at"], [[bot.id, i + 1, "message", "{}", tag, at]]));
		const [id] = await selectIds(db, "SELECT id FROM telegram_updates WHERE bot_id = ? AND update_id = ?", [bot.id, i + 1]);
		add("telegram_updates", id!, kept);
		const message = await db.models.Message.create({ bot_id: bot.id, chat_id: chat.id, telegram_message_id: i + 1, direction: "incoming", type: "text", text: `m${i + 1}`, update_row_id: id } as never);
		messages.push([Number(message.id), id!]);
	}

	for (const [daysAgo, kept] of SECURITY_EVENTS) {
		const event = await db.models.SecurityEvent.create({ type: "login_failed", user_id: null, api_key_id: null, ip: "192.0.2.1", details: tag, created_at: new Date(now - daysAgo * DAY_MS) } as never);
		add("security_events", Number(event.id), kept);
	}

	for (const [i, [expiresInHours, kept]] of REFRESH_TOKENS.entries()) {
		const expiresAt = new Date(now + expiresInHours * HOUR_MS);
		const token = await db.models.RefreshToken.create({
			user_id: user.id,
			family_id: tag,
			token_hash: `${tag}-${i}`,
			expires_at: expiresAt,
			used_at: i < REFRESH_TOKENS.length - 1 ? expiresAt : null,
			revoked_at: null,
			revoked_reason: null,
			created_ip: null,
			user_agent: null,
			created_at: new Date(expiresAt.getTime() - 7 * DAY_MS),
		} as never);
		add("refresh_tokens", Number(token.id), kept);
	}

	let dispatched = 0;
	for (const [daysAgo, reached, kept] of EVENTS) {
		const [event] = await db.rawTransaction(async (t) => insertEvents(db, t, await allocateSeqs(db, t, 1), [updateDraft(bot.id, chat.id, tag)], new Date(now - daysAgo * DAY_MS)));
		add("events", event!.seq, kept);
		if (reached) dispatched = event!.seq;
	}
	await db.rawTransaction((t) => run(db, t, "UPDATE sequences SET value = ? WHERE name = 'webhook_dispatch'", [dispatched]));
	return { rows, messages };
}

/** Per table, the seeded rows still stored. */
export async function storedRows(db: Database, seeded: Seeded): Promise<Record<PrunedTableName, number[]>> {
	const keyOf = (table: PrunedTableName) => (table === "events" ? "seq" : "id");
	const entries = await Promise.all(
		PRUNED_TABLES.map(async (table) => {
			const ids = seeded.rows[table].all;
			const found = await selectIds(db, `SELECT ${keyOf(table)} AS id FROM ${table} WHERE ${keyOf(table)} IN (${ids.map(() => "?").join(", ")}) ORDER BY ${keyOf(table)}`, ids);
			return [table, found] as const;
		}),
	);
	return Object.fromEntries(entries) as Record<PrunedTableName, number[]>;
}

/** Per table, the seeded rows a prune keeps. */
export function keptRows(seeded: Seeded): Record<PrunedTableName, number[]> {
	return Object.fromEntries(PRUNED_TABLES.map((table) => [table, seeded.rows[table].kept])) as Record<PrunedTableName, number[]>;
}

/** Per seeded message: the update it still points at (null once that update was removed). */
export async function messagesUpdates(db: Database, seeded: Seeded): Promise<Array<number | null>> {
	const rows = await db.sequelize.query<{ id: number; update_row_id: number | null }>(
		`SELECT id, update_row_id FROM messages WHERE id IN (${seeded.messages.map(() => "?").join(", ")}) ORDER BY id`,
		{ replacements: seeded.messages.map(([id]) => id), type: QueryTypes.SELECT },
	);
	return rows.map((row) => (row.update_row_id === null ? null : Number(row.update_row_id)));
}

/** What messagesUpdates gives after a prune: the kept updates' ids, null for the removed ones. */
export function expectedMessagesUpdates(seeded: Seeded): Array<number | null> {
	const kept = new Set(seeded.rows.telegram_updates.kept);
	return seeded.messages.map(([, updateId]) => (kept.has(updateId) ? updateId : null));
}
