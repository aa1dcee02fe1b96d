/**
 * Moleculer's request metrics, kept by CallMetricsMiddleware instead of Moleculer's registry: the
 * same families and labels on /metrics, each printed once, with the figures of the calls made.
 */
import { Errors, ServiceBroker, type MetricRegistryOptions, type Middleware } from "moleculer";
import { exposition, ScrapedPrometheusReporter } from "../../lib/metrics";
import { INTERNAL_MIDDLEWARES } from "../../lib/middlewares/call-metrics";
import { parseExposition, samplesOf, valueOf } from "../support/prometheus-text";

function brokerWith(metricsEnabled: boolean): ServiceBroker {
	const broker = new ServiceBroker({
		nodeID: "metrics-node",
		logger: false,
		metrics: { enabled: metricsEnabled, reporter: (metricsEnabled ? [new ScrapedPrometheusReporter({})] : null) as unknown as MetricRegistryOptions["reporter"], defaultQuantiles: null as unknown as number[] },
		internalMiddlewares: false,
		middlewares: INTERNAL_MIDDLEWARES as unknown as Middleware[],
	});
	broker.createService({
		name: "calc",
		actions: {
			double: { params: { n: "number" }, handler: (ctx) => (ctx.params as { n: number }).n * 2 },
			fail: () => Promise.reject(new Errors.MoleculerClientError("No such thing", 404, "NOT_FOUND")),
			/** Calls another action, so the inner call has a caller and level 2. */
			twice: { handler: async (ctx) => ctx.call<number, { n: number }>("calc.double", { n: 2 }) },
		},
	});
	return broker;
}

describe("call metrics", () => {
	let broker: ServiceBroker;
	afterEach(() => broker?.stop());

	it("counts calls by action and caller, their errors, levels and times, each family printed once", async () => {
		broker = brokerWith(true);
		await broker.start();
		await broker.call("calc.double", { n: 1 });
		await broker.call("calc.double", { n: 2 });
		await broker.call("calc.twice");
		await expect(broker.call("calc.fail")).rejects.toThrow("No such thing");
		// A validation failure is refused before the handler, and still counted as a failed call.
		await expect(broker.call("calc.double", { n: "x" })).rejects.toThrow(Errors.ValidationError);

		// parseExposition throws on a family declared twice.
		const metrics = parseExposition(await exposition(broker));
		expect(metrics.types.get("moleculer_request_total")).toBe("counter");
		expect(metrics.types.get("moleculer_request_time")).toBe("histogram");

		expect(valueOf(metrics, "moleculer_request_total", { service: "calc", action: "calc.double", type: "local", caller: "" })).toBe(3);
		expect(valueOf(metrics, "moleculer_request_total", { action: "calc.double", caller: "calc" })).toBe(1);
		expect(valueOf(metrics, "moleculer_request_total", { action: "calc.fail" })).toBe(1);
		for (const sample of samplesOf(metrics, "moleculer_request_active")) expect(sample.value).toBe(0);
		expect(valueOf(metrics, "moleculer_request_error_total", { action: "calc.fail", errorName: "MoleculerClientError", errorCode: "404", errorType: "NOT_FOUND" })).toBe(1);
		expect(valueOf(metrics, "moleculer_request_error_total", { action: "calc.double", errorName: "ValidationError", errorCode: "422" })).toBe(1);
		expect(valueOf(metrics, "moleculer_request_levels", { level: "1" })).toBe(5);
		expect(valueOf(metrics, "moleculer_request_levels", { level: "2" })).toBe(1);
		expect(valueOf(metrics, "moleculer_request_time_count", { action: "calc.double", caller: "" })).toBe(3);
		expect(valueOf(metrics, "moleculer_request_time_bucket", { action: "calc.double", caller: "", le: "+Inf" })).toBe(3);
		// Moleculer's other metrics are still Moleculer's.
		expect(metrics.types.get("moleculer_broker_middlewares_total")).toBe("gauge");
		for (const sample of metrics.samples) expect(sample.labels).toMatchObject({ nodeID: "metrics-node" });
	});

	it("reports the figures as of each scrape", async () => {
		broker = brokerWith(true);
		await broker.start();
		await broker.call("calc.double", { n: 1 });
		expect(valueOf(parseExposition(await exposition(broker)), "moleculer_request_total", { action: "calc.double" })).toBe(1);
		await broker.call("calc.double", { n: 1 });
		expect(valueOf(parseExposition(await exposition(broker)), "moleculer_request_total", { action: "calc.double" })).toBe(2);
	});

	it("keeps nothing and changes no answer when metrics are off", async () => {
		broker = brokerWith(false);
		await broker.start();
		expect(await broker.call("calc.twice")).toBe(4);
		const text = await exposition(broker);
		expect(text).not.toContain("moleculer_request");
	});
});
