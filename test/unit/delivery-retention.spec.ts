/**
 * Retention of the webhook delivery log on SQLite: finished deliveries past the retention go with
 * their attempts; deliveries still to be made, and ones touched recently, stay. And a deleted
 * webhook's whole log, removed in short batches.
 */
import type { Database } from "../../lib/db/connection";
import { pruneFinishedDeliveries, removeDeliveriesOf } from "../../services/delivery/retention";
import { migratedDatabase } from "../support/database";
import { RETENTION_DAYS, seedDeliveries, storedDeliveries } from "../support/retention";

const cutoff = () => new Date(Date.now() - RETENTION_DAYS * 24 * 60 * 60_000);

describe("pruneFinishedDeliveries", () => {
	let db: Database;

	beforeEach(async () => {
		db = await migratedDatabase();
	});
	afterEach(() => db.close());

	it.each([
		["in one batch", 1_000],
		["two rows per batch", 2],
		["one row per batch", 1],
	])("removes finished deliveries untouched for the retention, and their attempts; keeps the rest (%s)", async (_name, batch) => {
		const { webhookId, kept } = await seedDeliveries(db);
		expect(await pruneFinishedDeliveries(db, cutoff(), { batch })).toBe(3);
		expect(await storedDeliveries(db, webhookId)).toEqual({ deliveries: kept, attemptsOf: kept });
		// A second run finds nothing more.
		expect(await pruneFinishedDeliveries(db, cutoff(), { batch })).toBe(0);
	});

	it("stops at once when its signal is aborted", async () => {
		const { webhookId, all } = await seedDeliveries(db);
		const aborted = AbortSignal.abort();
		expect(await pruneFinishedDeliveries(db, cutoff(), { signal: aborted })).toBe(0);
		expect((await storedDeliveries(db, webhookId)).deliveries).toEqual(all);
	});

	it("removes nothing from an empty log", async () => {
		expect(await pruneFinishedDeliveries(db, cutoff())).toBe(0);
	});
});

describe("removeDeliveriesOf", () => {
	let db: Database;

	beforeEach(async () => {
		db = await migratedDatabase();
	});
	afterEach(() => db.close());

	it.each([
		["in one batch", 1_000],
		["two rows per batch", 2],
	])("removes every delivery of the webhook and their attempts, whatever their status (%s)", async (_name, batch) => {
		const doomed = await seedDeliveries(db);
		const other = await seedDeliveries(db);
		expect(await removeDeliveriesOf(db, doomed.webhookId, { batch })).toBe(doomed.all.length);
		expect(await storedDeliveries(db, doomed.webhookId)).toEqual({ deliveries: [], attemptsOf: [] });
		expect(await storedDeliveries(db, other.webhookId)).toEqual({ deliveries: other.all, attemptsOf: other.all });
		expect(await removeDeliveriesOf(db, doomed.webhookId, { batch })).toBe(0);
	});

	it("stops between batches when its signal is aborted", async () => {
		const { webhookId, all } = await seedDeliveries(db);
		expect(await removeDeliveriesOf(db, webhookId, { signal: AbortSignal.abort() })).toBe(0);
		expect((await storedDeliveries(db, webhookId)).deliveries).toEqual(all);
	});
});
