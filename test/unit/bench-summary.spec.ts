/** The benchmark report of `npm run bench` (test/bench/support/summary.ts): tables, report, README section. */
import type { Figure } from "../bench/support/bench";
import {
	README_END,
	README_START,
	figureRow,
	formatNumber,
	formatReport,
	machineInfo,
	readmeSection,
	spliceReadme,
	type BenchRun,
	type MachineInfo,
} from "../bench/support/summary";

const machine: MachineInfo = { cpu: "Test CPU @ 2.0GHz", cores: 2, memoryGiB: 7.8, node: "v20.18.1", os: "Linux 6.1 x64" };
const baseline = { name: "bare echo", value: 20_000.4 };
const figures: Figure[] = [
	{ name: "GET /auth/me with X-API-Key", value: 15_123.7, unit: "req/s", baseline, ratio: 0.7562, goal: ">= 0.7", met: true },
	{ name: "p50 / p99 latency", value: 3.456, unit: "ms / 12 ms" },
	{ name: "received (of 1000)", value: 998, unit: "/ 1000", goal: ">= 1000", met: false },
];
const runs: BenchRun[] = [
	{ file: "test/bench/auth.bench.ts", durationSeconds: 40, results: [{ bench: "Authenticated GET throughput", at: "2025-01-02T03:04:05.000Z", figures, notes: ["64 connections."] }] },
	{ file: "test/bench/ingest.bench.ts", durationSeconds: 12.4, results: [], failure: "exited with 1" },
];

describe("figure rows", () => {
	it("throughputs as whole numbers, counts as they are, the rest with two decimals", () => {
		expect(formatNumber(15_123.7, "req/s")).toBe("15124");
		expect(formatNumber(998, "/ 1000")).toBe("998");
		expect(formatNumber(3.456, "ms")).toBe("3.46");
		expect(formatNumber(Number.NaN, "ms")).toBe("NaN");
	});

	it("show value, baseline, ratio and goal; pipes in names cannot break the table", () => {
		expect(figureRow(figures[0]!)).toBe("| GET /auth/me with X-API-Key | 15124 req/s | bare echo: 20000 | 0.76 | >= 0.7 (met) |");
		expect(figureRow(figures[1]!)).toBe("| p50 / p99 latency | 3.46 ms / 12 ms | - | - | - |");
		expect(figureRow(figures[2]!)).toBe("| received (of 1000) | 998 / 1000 | - | - | >= 1000 (NOT met) |");
		expect(figureRow({ name: "a | b", value: 1, unit: "x" })).toBe("| a \\| b | 1 x | - | - | - |");
	});
});

describe("formatReport", () => {
	const report = formatReport(runs, machine, new Date("2025-01-02T04:00:00.000Z"), "npm run bench");

	it("names the date, the machine and the command, and counts failures and goals", () => {
		expect(report).toContain("- date: 2025-01-02T04:00:00.000Z");
		expect(report).toContain("- machine: Test CPU @ 2.0GHz, 2 cores, 7.8 GiB, Node v20.18.1, Linux 6.1 x64");
		expect(report).toContain("- command: `npm run bench`");
		expect(report).toContain("- benches: 2 run, 1 failed; goals: 1 of 2 met");
	});

	it("has one table per bench, its notes, and a section for the bench that failed", () => {
		expect(report).toContain(
			[
				"## Authenticated GET throughput",
				"",
				"`test/bench/auth.bench.ts`, finished 2025-01-02T03:04:05.000Z.",
				"",
				"| figure | value | baseline | ratio | goal |",
				"|---|---|---|---|---|",
				"| GET /auth/me with X-API-Key | 15124 req/s | bare echo: 20000 | 0.76 | >= 0.7 (met) |",
			].join("\n"),
		);
		expect(report).toContain("64 connections.");
		expect(report).toContain("## test/bench/ingest.bench.ts: no figures\n\nexited with 1 (after 12 s).");
	});

	it("describes this machine from node:os", () => {
		const here = machineInfo();
		expect(here.cores).toBeGreaterThan(0);
		expect(here.memoryGiB).toBeGreaterThan(0);
		expect(here.node).toBe(process.version);
	});
});

describe("the README section", () => {
	const report = formatReport(runs, machine, new Date("2025-01-02T04:00:00.000Z"), "npm run bench");
	const section = readmeSection(report);

	it("is the report without its title, headings one level down, between the markers", () => {
		expect(section.startsWith(README_START + "\n- date:")).toBe(true);
		expect(section.endsWith(README_END)).toBe(true);
		expect(section).not.toContain("# Benchmark figures");
		expect(section).toContain("\n### Authenticated GET throughput\n");
		expect(section).toContain("test/bench/reports/latest.md");
	});

	it("replaces what is between the markers and nothing else; twice gives the same README", () => {
		const readme = `# Project\n\nIntro.\n\n## Benchmark figures\n\n${README_START}\nold figures\n${README_END}\n\n## After\n\nMore.\n`;
		const once = spliceReadme(readme, section);
		expect(once).toBe(`# Project\n\nIntro.\n\n## Benchmark figures\n\n${section}\n\n## After\n\nMore.\n`);
		expect(spliceReadme(once, section)).toBe(once);
	});

	it("is appended under its own heading to a README that has none", () => {
		expect(spliceReadme("# Project\n\nIntro.\n", section)).toBe(`# Project\n\nIntro.\n\n## Benchmark figures\n\n${section}\n`);
	});
});
