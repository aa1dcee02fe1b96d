/**
 * A small reader of the Prometheus text format (0.0.4) for tests: families with their TYPE and
 * samples with their labels. It throws on any line it cannot read, so a malformed exposition fails
 * the test that scraped it. prom-client has no parser of its own.
 */
export interface Sample {
	name: string;
	labels: Record<string, string>;
	value: number;
}

export interface Exposition {
	types: Map<string, string>;
	samples: Sample[];
}

const SAMPLE_LINE = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?[ \t]+(\S+)(?:[ \t]+-?\d+)?$/;
const LABEL = /\s*([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"\s*(,|$)/y;
const TYPE_LINE = /^# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) (counter|gauge|histogram|summary|untyped)$/;
const HISTOGRAM_SUFFIX = /_(bucket|sum|count|rate)$/;

function parseLabels(raw: string, line: string): Record<string, string> {
	const labels: Record<string, string> = {};
	LABEL.lastIndex = 0;
	while (LABEL.lastIndex < raw.length) {
		const start = LABEL.lastIndex;
		const match = LABEL.exec(raw);
		if (!match || match.index !== start) throw new Error(`bad labels in line: ${line}`);
		labels[match[1]!] = match[2]!.replace(/\\(.)/g, (_m, c: string) => (c === "n" ? "\n" : c));
	}
	return labels;
}

function parseValue(raw: string, line: string): number {
	if (raw === "NaN") return Number.NaN;
	if (raw === "+Inf") return Number.POSITIVE_INFINITY;
	if (raw === "-Inf") return Number.NEGATIVE_INFINITY;
	const value = Number(raw);
	if (raw === "" || Number.isNaN(value)) throw new Error(`bad value in line: ${line}`);
	return value;
}

export function parseExposition(text: string): Exposition {
	const types = new Map<string, string>();
	const samples: Sample[] = [];
	for (const line of text.split("\n")) {
		if (line.trim() === "" || line.startsWith("# HELP ")) continue;
		if (line.startsWith("#")) {
			const type = TYPE_LINE.exec(line);
			if (!type) throw new Error(`bad comment line: ${line}`);
			if (types.has(type[1]!)) throw new Error(`family ${type[1]} declared twice`);
			types.set(type[1]!, type[2]!);
			continue;
		}
		const match = SAMPLE_LINE.exec(line);
		if (!match) throw new Error(`bad sample line: ${line}`);
		const name = match[1]!;
		if (!types.has(name) && !types.has(name.replace(HISTOGRAM_SUFFIX, ""))) throw new Error(`sample before its TYPE: ${line}`);
		samples.push({ name, labels: match[2] ? parseLabels(match[2], line) : {}, value: parseValue(match[3]!, line) });
	}
	return { types, samples };
}

/** The samples of `name` whose labels include `labels`. */
export function samplesOf(exposition: Exposition, name: string, labels: Record<string, string> = {}): Sample[] {
	return exposition.samples.filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v));
}

/** The one sample of `name` with these labels (summed if several match); 0 when none exists yet. */
export function valueOf(exposition: Exposition, name: string, labels: Record<string, string> = {}): number {
	return samplesOf(exposition, name, labels).reduce((sum, s) => sum + s.value, 0);
}
