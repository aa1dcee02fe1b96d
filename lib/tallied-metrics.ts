/**
 * A counter and a histogram for per-request paths. prom-client hashes and validates the label
 * object on every inc() and observe() (about a tenth of an authenticated GET's CPU with three such
 * updates per request); here a caller finds its series once, by a string key it already has, and
 * adds to plain numbers. The registry reads them at scrape time, in prom-client's own value format,
 * so the exposition text is what a prom-client Counter or Histogram would have written.
 */
import type { Registry } from "prom-client";

type Labels = Record<string, string>;
interface Sample {
	value: number;
	labels: Labels;
	/** Written after `labels` and the registry's default labels, as prom-client's histograms do. */
	sharedLabels?: Labels;
	metricName?: string;
}

interface Definition {
	name: string;
	help: string;
	registry: Registry;
}

abstract class TalliedMetric<S extends { labels: Labels }> {
	readonly name: string;
	readonly help: string;
	readonly aggregator = "sum";
	abstract readonly type: "counter" | "histogram";
	protected readonly series = new Map<string, S>();

	constructor(definition: Definition) {
		this.name = definition.name;
		this.help = definition.help;
		// prom-client's registry takes any object with a name and get(); its formatter does the rest.
		definition.registry.registerMetric(this as never);
	}

	/** The series of `key` (a string naming these labels), made on first use from `labels()`. */
	seriesFor(key: string, labels: () => Labels): S {
		let found = this.series.get(key);
		if (!found) {
			found = this.create(labels());
			this.series.set(key, found);
		}
		return found;
	}

	protected abstract create(labels: Labels): S;
	protected abstract samples(series: S): Sample[];

	get(): { name: string; help: string; type: string; aggregator: string; values: Sample[] } {
		const values: Sample[] = [];
		for (const s of this.series.values()) values.push(...this.samples(s));
		return { name: this.name, help: this.help, type: this.type, aggregator: this.aggregator, values };
	}

	reset(): void {
		this.series.clear();
	}
}

export class CounterSeries {
	value = 0;
	constructor(readonly labels: Labels) {}

	inc(by = 1): void {
		this.value += by;
	}
}

export class TalliedCounter extends TalliedMetric<CounterSeries> {
	readonly type = "counter";

	protected create(labels: Labels): CounterSeries {
		return new CounterSeries(labels);
	}

	protected samples(series: CounterSeries): Sample[] {
		return [{ value: series.value, labels: series.labels }];
	}
}

export class HistogramSeries {
	/** Observations per bucket (not cumulative); the last slot counts those above every bound. */
	readonly counts: number[];
	sum = 0;
	count = 0;

	constructor(
		readonly labels: Labels,
		private readonly bounds: readonly number[],
	) {
		this.counts = new Array<number>(bounds.length + 1).fill(0);
	}

	observe(value: number): void {
		if (!Number.isFinite(value)) return;
		this.sum += value;
		this.count += 1;
		const { bounds } = this;
		let i = 0;
		while (i < bounds.length && value > bounds[i]!) i++;
		this.counts[i]! += 1;
	}
}

export class TalliedHistogram extends TalliedMetric<HistogramSeries> {
	readonly type = "histogram";
	readonly bounds: readonly number[];

	constructor(definition: Definition & { buckets: readonly number[] }) {
		super(definition);
		this.bounds = [...definition.buckets].sort((a, b) => a - b);
	}

	protected create(labels: Labels): HistogramSeries {
		return new HistogramSeries(labels, this.bounds);
	}

	protected samples(series: HistogramSeries): Sample[] {
		const out: Sample[] = [];
		let cumulative = 0;
		const sharedLabels = series.labels;
		this.bounds.forEach((bound, i) => {
			cumulative += series.counts[i]!;
			out.push({ metricName: `${this.name}_bucket`, labels: { le: String(bound) }, sharedLabels, value: cumulative });
		});
		out.push({ metricName: `${this.name}_bucket`, labels: { le: "+Inf" }, sharedLabels, value: series.count });
		out.push({ metricName: `${this.name}_sum`, labels: {}, sharedLabels, value: series.sum });
		out.push({ metricName: `${this.name}_count`, labels: {}, sharedLabels, value: series.count });
		return out;
	}
}
