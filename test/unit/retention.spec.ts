/**
 * Retention on SQLite: deleteOlderThan (rows older than the cutoff go, newer ones stay, in batches,
 * stopping when aborted) and each table's job (telegram_updates past the de-duplication window,
 * security_events, refresh_tokens a day after they expire, events only once dispatched).
 */
import { QueryTypes } from "sequelize";
import type { GatewayConfig } from "../../lib/config";
import type { Database } from "../../lib/db/connection";
import { deleteOlderThan, type PrunedTable } from "../../lib/db/prune";
import type { RetentionJob } from "../../mixins/retention.mixin";
import { refreshTokensRetention, securityEventsRetention } from "../../services/auth/retention";
import { eventsRetention } from "../../services/broker/retention";
import { telegramUpdatesRetention } from "../../services/ingest/retention";
import { migratedDatabase } from "../support/database";
import { expectedMessagesUpdates, keptRows, messagesUpdates, SCENARIO_CONFIG, seedAgedRows, storedRows, type Seeded } from "../support/table-retention";

const DAY_MS = 24 * 60 * 60_000;
const SECURITY_EVENTS: PrunedTable = { table: "security_events", key: "id", time: "created_at" };

describe("deleteOlderThan", () => {
	let db: Database;
	beforeEach(async () => {
		db = await migratedDatabase();
	});
	afterEach(() => db.close());

	/** Security events created `daysAgo` (in that order); resolves with their ids. */
	const seed = async (...daysAgo: number[]) => {
		const ids: number[] = [];
		for (const days of daysAgo) {
			const row = await db.models.SecurityEvent.create({ type: "login_failed", user_id: null, api_key_id: null, ip: null, details: null, created_at: new Date(Date.now() - days * DAY_MS) } as never);
			ids.push(Number(row.id));
		}
		return ids;
	};
	const left = async () => (await db.sequelize.query<{ id: number }>("SELECT id FROM security_events ORDER BY id", { type: QueryTypes.SELECT })).map((r) => Number(r.id));
	const tenDaysAgo = () => new Date(Date.now() - 10 * DAY_MS);

	it.each([
		["in one batch", 1_000],
		["two rows per batch", 2],
		["one row per batch", 1],
	])("removes the rows from before the cutoff and keeps the newer ones, whatever their order by key (%s)", async (_name, batch) => {
		// Out of time order on purpose: the cutoff is on the time column, not the key.
		const [, b, , , e] = await seed(30, 5, 20, 11, 1);
		expect(await deleteOlderThan(db, SECURITY_EVENTS, tenDaysAgo(), { batch })).toBe(3);
		expect(await left()).toEqual([b, e]);
		expect(await deleteOlderThan(db, SECURITY_EVENTS, tenDaysAgo(), { batch })).toBe(0);
	});

	it("deletes each batch in a transaction of its own", async () => {
		await seed(40, 30, 20, 15, 12);
		const statements: string[] = [];
		const counting: Database = { ...db, rawTransaction: (work, options) => db.rawTransaction((t) => (statements.push("tx"), work(t)), options) };
		expect(await deleteOlderThan(counting, SECURITY_EVENTS, tenDaysAgo(), { batch: 2 })).toBe(5);
		expect(statements).toHaveLength(3);
	});

	it("removes the oldest rows first, and stops between batches when its signal aborts", async () => {
		// The second row is the oldest: it goes first.
		const [a, , c, d] = await seed(20, 40, 15, 30);
		const controller = new AbortController();
		const abortingAfterOne: Database = {
			...db,
			rawTransaction: async (work, options) => {
				const result = await db.rawTransaction(work, options);
				controller.abort();
				return result;
			},
		};
		expect(await deleteOlderThan(abortingAfterOne, SECURITY_EVENTS, tenDaysAgo(), { batch: 1, signal: controller.signal })).toBe(1);
		expect(await left()).toEqual([a, c, d]);
		expect(await deleteOlderThan(db, SECURITY_EVENTS, tenDaysAgo(), { signal: AbortSignal.abort() })).toBe(0);
		expect(await left()).toEqual([a, c, d]);
	});

	it("removes only the rows that also meet its further condition", async () => {
		const [, b] = await seed(40, 30, 20);
		expect(await deleteOlderThan(db, { ...SECURITY_EVENTS, where: { sql: "id <> ?", values: [b!] } }, tenDaysAgo(), { batch: 1 })).toBe(2);
		expect(await left()).toEqual([b]);
	});

	it("removes nothing from an empty table", async () => {
		expect(await deleteOlderThan(db, SECURITY_EVENTS, tenDaysAgo())).toBe(0);
	});
});

describe("retention jobs", () => {
	let db: Database;
	let seeded: Seeded;
	beforeEach(async () => {
		db = await migratedDatabase();
		seeded = await seedAgedRows(db);
	});
	afterEach(() => db.close());

	const runJob = async (job: RetentionJob, config: GatewayConfig = SCENARIO_CONFIG, batch?: number) => {
		const cutoff = job.cutoff(config, Date.now());
		return cutoff === null ? null : job.prune(db, cutoff, { batch });
	};

	it.each([undefined, 1])("each removes what is past its table's retention and keeps the rest (batch %p)", async (batch) => {
		const all = await storedRows(db, seeded);
		expect(await runJob(telegramUpdatesRetention, SCENARIO_CONFIG, batch)).toBe(2);
		expect(await runJob(securityEventsRetention, SCENARIO_CONFIG, batch)).toBe(2);
		expect(await runJob(refreshTokensRetention, SCENARIO_CONFIG, batch)).toBe(2);
		expect(await runJob(eventsRetention, SCENARIO_CONFIG, batch)).toBe(2);
		const kept = keptRows(seeded);
		expect(await storedRows(db, seeded)).toEqual(kept);
		expect(all.events).toHaveLength(kept.events.length + 2);
	});

	it("removing updates keeps their messages, which no longer point at them", async () => {
		await runJob(telegramUpdatesRetention);
		expect(await messagesUpdates(db, seeded)).toEqual(expectedMessagesUpdates(seeded));
		expect((await messagesUpdates(db, seeded)).filter((id) => id === null)).toHaveLength(2);
	});

	it("the de-duplication window follows TELEGRAM_UPDATE_RETENTION_HOURS", async () => {
		expect(await runJob(telegramUpdatesRetention, { ...SCENARIO_CONFIG, telegramUpdateRetentionHours: 167 })).toBe(0);
		expect(await runJob(telegramUpdatesRetention, { ...SCENARIO_CONFIG, telegramUpdateRetentionHours: 24 })).toBe(3);
	});

	it("0 days keeps security events and events for ever; refresh tokens and updates have no such setting", async () => {
		const forever = { ...SCENARIO_CONFIG, securityEventRetentionDays: 0, eventRetentionDays: 0 };
		expect(securityEventsRetention.cutoff(forever, Date.now())).toBeNull();
		expect(eventsRetention.cutoff(forever, Date.now())).toBeNull();
		expect(refreshTokensRetention.cutoff(forever, Date.now())).not.toBeNull();
		expect(telegramUpdatesRetention.cutoff(forever, Date.now())).not.toBeNull();
	});

	it("events the webhook dispatcher has not reached stay however old, and go once it has", async () => {
		const [, , waiting] = seeded.rows.events.all;
		await runJob(eventsRetention);
		expect(await storedRows(db, seeded).then((rows) => rows.events)).toContain(waiting);
		await db.sequelize.query("UPDATE sequences SET value = ? WHERE name = 'webhook_dispatch'", { replacements: [waiting] });
		expect(await runJob(eventsRetention)).toBe(1);
		expect(await storedRows(db, seeded).then((rows) => rows.events)).not.toContain(waiting);
	});
});
