/**
 * The report of `npm run bench` (test/bench/run.ts): every bench's figures with their baselines and
 * ratios, the machine and the date, as markdown; and the README's "Benchmark figures" section,
 * rewritten between its markers from that report.
 */
import { cpus, totalmem, type as osType, release, arch } from "node:os";
import type { Figure } from "./bench";

/** What each bench's report() writes as JSON (support/bench.ts). */
export interface BenchResult {
	bench: string;
	at: string;
	machine?: string;
	figures: Figure[];
	notes?: string[];
}

export interface MachineInfo {
	cpu: string;
	cores: number;
	memoryGiB: number;
	node: string;
	os: string;
}

/** One bench file's outcome: its results, or why there are none. */
export interface BenchRun {
	file: string;
	results: BenchResult[];
	/** Set when the bench exited non-zero or reported nothing. */
	failure?: string;
	durationSeconds: number;
}

export const README_START = "<!-- bench-figures:start (written by npm run bench from test/bench/reports/latest.md) -->";
export const README_END = "<!-- bench-figures:end -->";

export function machineInfo(): MachineInfo {
	const list = cpus();
	return {
		cpu: list[0]?.model.trim() ?? "unknown",
		cores: list.length,
		memoryGiB: Math.round((totalmem() / 2 ** 30) * 10) / 10,
		node: process.version,
		os: `${osType()} ${release()} ${arch()}`,
	};
}

export function describeMachine(m: MachineInfo): string {
	return `${m.cpu}, ${m.cores} cores, ${m.memoryGiB} GiB, Node ${m.node}, ${m.os}`;
}

/** Throughputs (units ending in /s) as whole numbers, counts as they are, the rest with two decimals. */
export function formatNumber(value: number, unit = ""): string {
	if (!Number.isFinite(value)) return String(value);
	if (Number.isInteger(value)) return String(value);
	return /\/s$/.test(unit) ? value.toFixed(0) : value.toFixed(2);
}

/** Table cells may not hold a pipe or a line break. */
function cell(text: string): string {
	return text.replace(/\|/g, "\\|").replace(/\s*\n\s*/g, " ");
}

export function figureRow(f: Figure): string {
	const value = `${formatNumber(f.value, f.unit)} ${f.unit}`.trim();
	const baseline = f.baseline ? `${f.baseline.name}: ${formatNumber(f.baseline.value, f.unit)}` : "-";
	const ratio = f.ratio !== undefined ? f.ratio.toFixed(2) : "-";
	const goal = f.goal ? `${f.goal} ${f.met ? "(met)" : "(NOT met)"}` : "-";
	return `| ${[f.name, value, baseline, ratio, goal].map(cell).join(" | ")} |`;
}

/** The markdown report; `depth` is the heading level of each bench (2 in the file, 3 in the README). */
export function formatBenchSections(runs: BenchRun[], depth = 2): string {
	const hashes = "#".repeat(depth);
	const out: string[] = [];
	for (const run of runs) {
		for (const result of run.results) {
			out.push(`${hashes} ${result.bench}`, "", `\`${run.file}\`, finished ${result.at}.`, "", "| figure | value | baseline | ratio | goal |", "|---|---|---|---|---|");
			out.push(...result.figures.map(figureRow), "");
			for (const note of result.notes ?? []) out.push(note, "");
		}
		if (run.failure) out.push(`${hashes} ${run.file}: no figures`, "", `${run.failure} (after ${run.durationSeconds.toFixed(0)} s).`, "");
	}
	return out.join("\n").trimEnd() + "\n";
}

export function formatReport(runs: BenchRun[], machine: MachineInfo, date: Date, command: string): string {
	const goals = runs.flatMap((r) => r.results.flatMap((x) => x.figures)).filter((f) => f.goal);
	const missed = goals.filter((f) => !f.met).length;
	const failed = runs.filter((r) => r.failure).length;
	return [
		"# Benchmark figures",
		"",
		`- date: ${date.toISOString()}`,
		`- machine: ${describeMachine(machine)}`,
		`- command: \`${command}\``,
		`- benches: ${runs.length} run, ${failed} failed; goals: ${goals.length - missed} of ${goals.length} met`,
		"",
		"Each ratio is the figure over a baseline measured in the same run on the same machine, so it says more than the absolute value on a shared machine.",
		"",
		formatBenchSections(runs),
	].join("\n");
}

/** The README section: the report without its title, each bench one heading level down. */
export function readmeSection(report: string): string {
	const body = report
		.replace(/^# .*\n+/, "")
		.split("\n")
		.map((line) => (/^#{2,5} /.test(line) ? `#${line}` : line))
		.join("\n")
		.trim();
	return `${README_START}\n${body}\n\nThe whole report: [test/bench/reports/latest.md](test/bench/reports/latest.md). Regenerate with \`npm run bench\`.\n${README_END}`;
}

/** The README with its section replaced, or appended under "## Benchmark figures" when it has none. */
export function spliceReadme(readme: string, section: string): string {
	// Found by its fixed prefix, so a reworded explanation in the marker still matches.
	const start = readme.indexOf("<!-- bench-figures:start");
	const end = readme.indexOf(README_END);
	if (start !== -1 && end > start) return readme.slice(0, start) + section + readme.slice(end + README_END.length);
	return `${readme.trimEnd()}\n\n## Benchmark figures\n\n${section}\n`;
}
