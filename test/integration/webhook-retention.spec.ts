/**
 * The delivery service's retention of the webhook delivery log (WEBHOOK_DELIVERY_RETENTION_DAYS):
 * what a prune run removes, and that 0 keeps everything.
 */
import { startTestGateway, type TestGateway } from "../support/harness";
import { seedDeliveries, storedDeliveries } from "../support/retention";

type DeliveryService = { pruneExpired(): Promise<void> };

describe("webhook delivery log retention", () => {
	let gw: TestGateway | undefined;
	afterEach(async () => {
		await gw?.stop();
		gw = undefined;
	});

	const start = async (env: Record<string, string>) => {
		gw = await startTestGateway({ env: { SERVICES: "auth,delivery", ...env } });
		return { db: gw.runtime.db, delivery: gw.broker.getLocalService("delivery") as unknown as DeliveryService };
	};

	it("30 days by default: finished deliveries untouched for longer go, with their attempts; deliveries still to be made stay", async () => {
		const { db, delivery } = await start({});
		const { webhookId, kept } = await seedDeliveries(db);
		await delivery.pruneExpired();
		expect(await storedDeliveries(db, webhookId)).toEqual({ deliveries: kept, attemptsOf: kept });
	});

	it("0 keeps every delivery", async () => {
		const { db, delivery } = await start({ WEBHOOK_DELIVERY_RETENTION_DAYS: "0" });
		const { webhookId, all } = await seedDeliveries(db);
		await delivery.pruneExpired();
		expect(await storedDeliveries(db, webhookId)).toEqual({ deliveries: all, attemptsOf: all });
	});
});
