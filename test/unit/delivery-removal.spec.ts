/** removeDeliveriesOf: a deleted webhook's log goes in short batches, its attempts with it; other webhooks' logs stay. */
import type { Database } from "../../lib/db/connection";
import { removeDeliveriesOf } from "../../services/delivery/retention";
import { migratedDatabase } from "../support/database";
import { seedDeliveries, storedDeliveries } from "../support/retention";

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
