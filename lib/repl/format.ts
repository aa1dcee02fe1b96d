/**
 * What the REPL's commands print, as plain data: blocks of text and tables of strings. Rendering
 * them (moleculer-repl's bundled `table`) happens in lib/repl/index.ts; everything here is pure.
 */
import { toApiError } from "../errors";
import { UsageError } from "./args";

export type Block = { kind: "text"; text: string } | { kind: "table"; title?: string; head: string[]; rows: string[][] };

export const text = (line: string): Block => ({ kind: "text", text: line });

/** One table cell: "-" for nothing, lists comma-separated, flags yes/no, on one line. */
export function cell(value: unknown): string {
	if (value === null || value === undefined || value === "") return "-";
	if (Array.isArray(value)) return value.length === 0 ? "-" : value.map(cell).join(", ");
	if (typeof value === "boolean") return value ? "yes" : "no";
	if (value instanceof Date) return value.toISOString();
	// The table renderer refuses control characters (an endpoint's error text may hold newlines).
	// eslint-disable-next-line no-control-regex
	return (typeof value === "object" ? JSON.stringify(value) : String(value)).replace(/[\u0000-\u001f\u007f]+/g, " ");
}

/** A table of records: `columns` picks the fields, in order; a column may be `field:Heading`. */
export function tableOf(rows: ReadonlyArray<Record<string, unknown>>, columns: readonly string[], title?: string): Block {
	const fields = columns.map((c) => {
		const [field, heading] = c.split(":");
		return { field: field!, heading: heading ?? field! };
	});
	return {
		kind: "table",
		...(title !== undefined ? { title } : {}),
		head: fields.map((f) => f.heading),
		rows: rows.map((row) => fields.map((f) => cell(row[f.field]))),
	};
}

/** A two-column table of name / value pairs. */
export function pairs(entries: ReadonlyArray<readonly [string, unknown]>, title?: string): Block {
	return { kind: "table", ...(title !== undefined ? { title } : {}), head: ["", ""], rows: entries.map(([k, v]) => [k, cell(v)]) };
}

/** Events per second over a window, two decimals. */
export function perSecond(count: number, windowSeconds: number): string {
	return windowSeconds > 0 ? (count / windowSeconds).toFixed(2) : "0.00";
}

/** How long ago an ISO time was, coarsely: "45s", "12m", "3h", "2d". */
export function age(isoTime: string | null | undefined, now = Date.now()): string {
	if (!isoTime) return "-";
	const ms = Math.max(0, now - new Date(isoTime).getTime());
	if (Number.isNaN(ms)) return "-";
	if (ms < 60_000) return `${Math.floor(ms / 1_000)}s`;
	if (ms < 3_600_000) return `${Math.floor(ms / 60_000)}m`;
	if (ms < 86_400_000) return `${Math.floor(ms / 3_600_000)}h`;
	return `${Math.floor(ms / 86_400_000)}d`;
}

/** An error as the operator should read it: the API's message and the fields it names. */
export function describeError(err: unknown, usage: readonly string[] = []): string[] {
	if (err instanceof UsageError) return [`error: ${err.message}`, ...(usage.length > 0 ? ["usage:", ...usage.map((u) => `  ${u}`)] : [])];
	const { status, body } = toApiError(err);
	const lines = [`error: ${body.error.message} (${body.error.code}, ${status})`];
	const fields = body.error.details?.fields;
	if (Array.isArray(fields)) for (const f of fields as Array<{ field: string; message: string }>) lines.push(`  ${f.field}: ${f.message}`);
	// A call that found no node to run it: say which service is missing rather than "unavailable".
	const raw = err as { type?: string; data?: { action?: string } };
	if (raw?.type === "SERVICE_NOT_FOUND" || raw?.type === "SERVICE_NOT_AVAILABLE") {
		lines.push(`  no node runs ${raw.data?.action ?? "the service this needs"} right now`);
	}
	return lines;
}

// ---- stats ----------------------------------------------------------------------------------

export type Part<T> = { ok: true; value: T } | { ok: false; error: string };

export interface StreamNodeStats {
	node_id: string;
	feed_seq: number;
	connections: number;
	socketio: number;
	websocket: number;
	grpc_streams: number;
	subscriptions: number;
}

export interface StatsSnapshot {
	window_seconds: number;
	ingest: Part<{ updates: number }>;
	log: Part<{ head_seq: number; events: number }>;
	streams: Array<{ service: string; node_id: string; stats: Part<StreamNodeStats> }>;
	queue: Part<{ total: number; bots: Array<{ bot_id: number; queued: number; due: number; max_attempts: number; oldest_at: string | null }> }>;
	delivery: Part<{
		deliveries: Record<string, number>;
		active_webhooks: number;
		breakers: { closed: number; open: number; half_open: number };
		not_closed: Array<{ webhook_id: number; url: string; state: string; open_until: string | null }>;
	}>;
}

const unavailable = (what: string, part: { ok: false; error: string }): Block => text(`${what}: unavailable (${part.error})`);

export function formatStats(s: StatsSnapshot, now = Date.now()): Block[] {
	const blocks: Block[] = [];
	const w = s.window_seconds;
	const traffic: Array<[string, unknown]> = [];
	if (s.ingest.ok) traffic.push(["updates/s", perSecond(s.ingest.value.updates, w)], [`updates (last ${w} s)`, s.ingest.value.updates]);
	if (s.log.ok) {
		traffic.push(["events/s", perSecond(s.log.value.events, w)], [`events emitted (last ${w} s)`, s.log.value.events], ["event log head (seq)", s.log.value.head_seq]);
	}
	if (traffic.length > 0) blocks.push(pairs(traffic, "Traffic"));
	if (!s.ingest.ok) blocks.push(unavailable("updates", s.ingest));
	if (!s.log.ok) blocks.push(unavailable("events", s.log));

	const streamRows = s.streams.map(({ service, node_id, stats }) =>
		stats.ok
			? [node_id, service, cell(stats.value.socketio), cell(stats.value.websocket), cell(stats.value.grpc_streams), cell(stats.value.subscriptions), cell(stats.value.feed_seq)]
			: [node_id, service, "?", "?", "?", "?", `unavailable (${stats.error})`],
	);
	const total = (key: "socketio" | "websocket" | "grpc_streams" | "subscriptions") =>
		String(s.streams.reduce((sum, n) => sum + (n.stats.ok ? n.stats.value[key] : 0), 0));
	if (streamRows.length > 0) streamRows.push(["total", "", total("socketio"), total("websocket"), total("grpc_streams"), total("subscriptions"), ""]);
	blocks.push({ kind: "table", title: "Live connections", head: ["node", "service", "socket.io", "websocket", "grpc streams", "subscriptions", "feed seq"], rows: streamRows });

	if (s.queue.ok) {
		const rows = s.queue.value.bots.map((b) => ({ ...b, oldest: age(b.oldest_at, now) }));
		blocks.push(tableOf(rows, ["bot_id:bot", "queued", "due", "max_attempts:max attempts", "oldest"], `Outbound queue (${s.queue.value.total} queued)`));
	} else blocks.push(unavailable("outbound queue", s.queue));

	if (s.delivery.ok) {
		const d = s.delivery.value;
		blocks.push(
			pairs(
				[
					["pending", d.deliveries.pending ?? 0],
					["in flight", d.deliveries.in_flight ?? 0],
					["failed (retrying)", d.deliveries.failed ?? 0],
					["dead", d.deliveries.dead ?? 0],
					["active webhooks", d.active_webhooks],
					["breakers closed / open / half-open", `${d.breakers.closed} / ${d.breakers.open} / ${d.breakers.half_open}`],
				],
				"Webhook deliveries",
			),
		);
		if (d.not_closed.length > 0) blocks.push(tableOf(d.not_closed, ["webhook_id:webhook", "state", "open_until:open until", "url"], "Breakers not closed"));
	} else blocks.push(unavailable("webhook deliveries", s.delivery));
	return blocks;
}
