/**
 * The fault suite's figures: one row per fault, printed as a table and written to
 * test/faults/reports/latest.md and latest.json for the README and the team's notes to quote.
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";

export interface ConsumerFigures {
	name: string;
	expected: number;
	delivered: number;
	lost: number;
	duplicates: number;
	out_of_order: number;
	/** Subscriptions after the first in this phase: each one a comeback with since_seq. */
	resubscribed: number;
}

export interface FaultFigures {
	fault: string;
	/** What was done, in words ("SIGKILL worker-1 (dispatcher lease holder), started again"). */
	action: string;
	/** From the fault until the component served again (0 for the baseline). */
	down_ms: number;
	ingest: {
		sent: number;
		accepted: number;
		stored: number;
		lost: number;
		/** Answers other than 2xx, by status ("network" when none came); each was delivered again. */
		refused: Record<string, number>;
		/** From the fault to the first 2xx for an update first pushed after it. */
		first_ok_after_fault_ms: number | null;
		/** The longest time without any 2xx during the phase. */
		longest_gap_ms: number;
	};
	sends: { accepted: number; sent_to_telegram: number; lost: number; duplicates: number; refused: Record<string, number> };
	webhooks: ConsumerFigures[];
	sockets: ConsumerFigures[];
	grpc: ConsumerFigures[];
	/** Nodes that exited without being told to. */
	crashed_nodes: string[];
	seq_range: [number, number];
}

export interface SuiteReport {
	generated_at: string;
	cluster: string[];
	load: string;
	faults: FaultFigures[];
}

const sum = (list: ConsumerFigures[], field: keyof Omit<ConsumerFigures, "name">) => list.reduce((n, c) => n + c[field], 0);
const seconds = (ms: number | null) => (ms === null ? "never" : `${(ms / 1000).toFixed(1)} s`);
const refusals = (r: Record<string, number>) =>
	Object.entries(r)
		.map(([status, n]) => `${n}×${status}`)
		.join(", ") || "none";

function fanout(list: ConsumerFigures[]): string {
	return `${sum(list, "delivered")}/${sum(list, "expected")} (lost ${sum(list, "lost")}, dup ${sum(list, "duplicates")}, resub ${sum(list, "resubscribed")})`;
}

export function markdown(report: SuiteReport): string {
	const lines = [
		"# Fault suite: latest run",
		"",
		`Generated ${report.generated_at} by \`npm run test:faults\` (test/faults/faults.spec.ts).`,
		"",
		`Cluster: ${report.cluster.join("; ")}. Load: ${report.load}.`,
		"",
		"## Ingest and sends",
		"",
		"| fault | down | updates accepted / stored / lost | non-2xx answers (pushed again) | first 2xx after fault | longest ingest gap | sends accepted / sent / lost / dup | crashed nodes |",
		"|---|---|---|---|---|---|---|---|",
	];
	for (const f of report.faults) {
		const i = f.ingest;
		lines.push(
			`| ${f.fault} | ${seconds(f.down_ms)} | ${i.accepted} / ${i.stored} / ${i.lost} | ${refusals(i.refused)} | ${seconds(i.first_ok_after_fault_ms)} | ${seconds(i.longest_gap_ms)} | ${f.sends.accepted} / ${f.sends.sent_to_telegram} / ${f.sends.lost} / ${f.sends.duplicates} | ${f.crashed_nodes.join(", ") || "none"} |`,
		);
	}
	lines.push(
		"",
		"## Fan-out (delivered / expected, against the events table)",
		"",
		"| fault | events (seq range) | webhooks (3 endpoints) | socket.io (api-a, api-b) | gRPC StreamChatMessages |",
		"|---|---|---|---|---|",
	);
	for (const f of report.faults) {
		lines.push(`| ${f.fault} | ${f.seq_range[1] - f.seq_range[0]} (${f.seq_range[0] + 1}..${f.seq_range[1]}) | ${fanout(f.webhooks)} | ${fanout(f.sockets)} | ${fanout(f.grpc)} |`);
	}
	lines.push("", "## What was done", "");
	for (const f of report.faults) lines.push(`- **${f.fault}**: ${f.action}`);
	lines.push(
		"",
		"Lost = accepted (2xx) or expected but never stored / delivered. Duplicates are extra deliveries of an event",
		"already received (webhooks are at-least-once; receivers de-duplicate on `webhook-id`). `resub` counts",
		"comebacks: a consumer whose connection dropped subscribed again with `since_seq`.",
		"",
	);
	return lines.join("\n");
}

/** Writes latest.md and latest.json next to this suite; returns the markdown. */
export function writeReport(report: SuiteReport): string {
	const dir = join(__dirname, "..", "reports");
	mkdirSync(dir, { recursive: true });
	const text = markdown(report);
	writeFileSync(join(dir, "latest.md"), text);
	writeFileSync(join(dir, "latest.json"), `${JSON.stringify(report, null, 2)}\n`);
	return text;
}
