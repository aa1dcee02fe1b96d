import { Counter, Histogram, Registry } from "prom-client";
import { TalliedCounter, TalliedHistogram } from "../../lib/tallied-metrics";

/** Two registries with the same default labels: one for prom-client's metrics, one for the tallied ones. */
function registries() {
	const theirs = new Registry();
	const ours = new Registry();
	for (const r of [theirs, ours]) r.setDefaultLabels({ nodeID: "n1" });
	return { theirs, ours };
}

describe("tallied metrics", () => {
	it("a tallied histogram writes exactly what prom-client's Histogram writes for the same observations", async () => {
		const { theirs, ours } = registries();
		const buckets = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
		const reference = new Histogram({ name: "h_seconds", help: "help text", labelNames: ["method", "route"], buckets, registers: [theirs] });
		const tallied = new TalliedHistogram({ name: "h_seconds", help: "help text", buckets, registry: ours });
		const observations: Array<[string, string, number]> = [
			["GET", "/a", 0.001],
			["GET", "/a", 0.005], // on a bound: counted in that bucket, as Prometheus defines le
			["GET", "/a", 0.0051],
			["GET", "/a", 3],
			["GET", "/a", 42], // above every bound: only in +Inf
			["POST", "/b", 0.2],
			["POST", "/b", 0],
		];
		for (const [method, route, value] of observations) {
			reference.observe({ method, route }, value);
			tallied.seriesFor(`${method} ${route}`, () => ({ method, route })).observe(value);
		}
		expect(await ours.metrics()).toBe(await theirs.metrics());
	});

	it("a tallied counter writes exactly what prom-client's Counter writes", async () => {
		const { theirs, ours } = registries();
		const reference = new Counter({ name: "c_total", help: "help", labelNames: ["status"], registers: [theirs] });
		const tallied = new TalliedCounter({ name: "c_total", help: "help", registry: ours });
		for (const status of ["200", "200", "404", "200"]) {
			reference.inc({ status });
			tallied.seriesFor(status, () => ({ status })).inc();
		}
		reference.inc({ status: "500" }, 5);
		tallied.seriesFor("500", () => ({ status: "500" })).inc(5);
		expect(await ours.metrics()).toBe(await theirs.metrics());
	});

	it("a series is made once per key; its labels are asked for only then", () => {
		const tallied = new TalliedCounter({ name: "x_total", help: "x", registry: new Registry() });
		const labels = jest.fn(() => ({ a: "1" }));
		tallied.seriesFor("k", labels).inc();
		tallied.seriesFor("k", labels).inc();
		expect(labels).toHaveBeenCalledTimes(1);
		expect(tallied.get().values).toEqual([{ value: 2, labels: { a: "1" } }]);
	});

	it("a value that is not a finite number is not observed (it would poison the sum)", () => {
		const tallied = new TalliedHistogram({ name: "y", help: "y", buckets: [1], registry: new Registry() });
		const s = tallied.seriesFor("k", () => ({}));
		s.observe(Number.NaN);
		s.observe(Number.POSITIVE_INFINITY);
		s.observe(0.5);
		expect([s.count, s.sum]).toEqual([1, 0.5]);
	});
});
