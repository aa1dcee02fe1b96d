/**
 * REPL `stats`: the cluster at a glance. Database-wide figures come from any node that runs the
 * service (ingest, broker, bots, delivery); live connections are per node, so every node running
 * realtime or grpc is asked. A part that cannot be had says why instead of failing the rest.
 */
import { noExtra, optionalInt, parseCommand } from "../args";
import type { GatewayClient } from "../client";
import type { ReplCommand } from "../command";
import { describeError, formatStats, text, type Part, type StatsSnapshot, type StreamNodeStats } from "../format";

async function part<T>(work: () => Promise<T>): Promise<Part<T>> {
	try {
		return { ok: true, value: await work() };
	} catch (err) {
		return { ok: false, error: describeError(err).join(" ").replace(/^error: /, "") };
	}
}

export async function collectStats(client: GatewayClient, windowSeconds: number): Promise<StatsSnapshot> {
	const window = { window_seconds: windowSeconds };
	const streamNodes = ["realtime", "grpc"].flatMap((service) => client.nodesRunning(service).map((nodeID) => ({ service, nodeID })));
	const [ingest, log, queue, delivery, streams] = await Promise.all([
		part(() => client.call<{ updates: number }>("ingest.stats", window)),
		part(() => client.call<{ head_seq: number; events: number }>("broker.stats", window)),
		part(() => client.call<Extract<StatsSnapshot["queue"], { ok: true }>["value"]>("bots.queueStats")),
		part(() => client.call<Extract<StatsSnapshot["delivery"], { ok: true }>["value"]>("delivery.stats")),
		Promise.all(
			streamNodes.map(async ({ service, nodeID }) => ({
				service,
				node_id: nodeID,
				stats: await part(() => client.call<StreamNodeStats>(`${service}.stats`, {}, { nodeID })),
			})),
		),
	]);
	return { window_seconds: windowSeconds, ingest, log, queue, delivery, streams };
}

export const stats: ReplCommand = {
	name: "stats",
	summary: "Updates/s, events, live connections, outbound queue, webhook deliveries and breakers",
	usage: ["stats [--window <seconds>]     rates over the last window (default 60 s)"],
	async run(client, argv) {
		const { sub, positionals, values } = parseCommand(argv, { window: { type: "string" } });
		if (sub === "help") return this.usage.map((line) => text(line));
		noExtra([sub, ...positionals].filter(Boolean), 0);
		const windowSeconds = optionalInt(values.window, "window", 1, 3_600) ?? 60;
		return formatStats(await collectStats(client, windowSeconds));
	},
};
