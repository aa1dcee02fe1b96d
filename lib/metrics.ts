/**
 * What GET /metrics shows, per node: Moleculer's own metrics (calls, events, transit, process),
 * written by its Prometheus reporter, followed by the gateway's `tgw_` metrics, kept in a prom-client
 * registry per broker. Services count with one line (`metricsOf(this.broker).x.inc()`); gauges whose
 * figure already lives somewhere (a queue table, open sockets) are read at scrape time from the
 * samplers the services register. Every node exposes its own figures: Prometheus scrapes each node.
 */
import { createHash, timingSafeEqual } from "node:crypto";
import type { IncomingMessage, Server, ServerResponse } from "node:http";
import { MetricReporters, type ServiceBroker } from "moleculer";
import { Counter, Gauge, Registry } from "prom-client";
import type { GatewayConfig } from "./config";
import { TalliedCounter, TalliedHistogram } from "./tallied-metrics";

type MoleculerRegistry = ServiceBroker["metrics"];

/**
 * Moleculer's Prometheus reporter without the HTTP server it would open on a port of its own: the
 * same text, served on the gateway's port (api nodes) or the ops port (other nodes), behind METRICS_TOKEN.
 */
export class ScrapedPrometheusReporter extends MetricReporters.Prometheus {
	override init(registry: MoleculerRegistry): void {
		MetricReporters.Base.prototype.init.call(this, registry);
		const self = this as unknown as { defaultLabels: Record<string, string> };
		self.defaultLabels = { namespace: registry.broker.namespace, nodeID: registry.broker.nodeID };
	}

	stop(): Promise<void> {
		return Promise.resolve();
	}

	/** The reporter's own formatter (not in Moleculer's typings). */
	text(): string {
		return (this as unknown as { generatePrometheusResponse(): string }).generatePrometheusResponse();
	}
}

/** Gauges read at scrape time; each exists on a node only while a service there samples it. */
const SAMPLED = {
	live_connections: { name: "tgw_live_connections", help: "Open consumer connections on this node, by transport (socketio, websocket, grpc)", labelNames: ["transport"] },
	webhook_breakers: { name: "tgw_webhook_breakers", help: "Active webhook endpoints by breaker state (cluster-wide: the same on every delivery node)", labelNames: ["state"] },
	send_queue_depth: { name: "tgw_send_queue_depth", help: "Outgoing messages waiting in the send queue (cluster-wide: the same on every bots node)", labelNames: [] },
} as const;

export type SampledGauge = keyof typeof SAMPLED;
/** A plain number, or figures by the gauge's one label value. */
export type Reading = number | Record<string, number>;
type Sampler = () => Reading | Promise<Reading>;

export class GatewayMetrics {
	readonly registry = new Registry();
	private readonly reg = { registers: [this.registry] };

	// Updated on every HTTP request: tallied (lib/tallied-metrics.ts), not label-hashed per request.
	readonly httpRequests = new TalliedCounter({ name: "tgw_http_requests_total", help: "HTTP requests answered, by method, route template and status", registry: this.registry });
	readonly httpDuration = new TalliedHistogram({
		name: "tgw_http_request_duration_seconds",
		help: "Time to answer an HTTP request, by method and route template",
		buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
		registry: this.registry,
	});
	readonly updatesReceived = new Counter({ name: "tgw_telegram_updates_received_total", help: "Telegram updates that reached the store (webhook or polling), duplicates included", ...this.reg });
	readonly updatesDuplicate = new Counter({ name: "tgw_telegram_updates_duplicate_total", help: "Telegram updates already stored (same bot and update_id): acknowledged, not stored again", ...this.reg });
	readonly updatesRejected = new Counter({ name: "tgw_telegram_updates_rejected_total", help: "Telegram webhook pushes refused before the store, by reason", labelNames: ["reason"] as const, ...this.reg });
	readonly eventsEmitted = new Counter({ name: "tgw_events_emitted_total", help: "Events of the event log published to the cluster, by type", labelNames: ["type"] as const, ...this.reg });
	readonly webhookDeliveries = new Counter({ name: "tgw_webhook_deliveries_total", help: "Webhook delivery attempts recorded, by outcome (succeeded, retry, dead, gone)", labelNames: ["outcome"] as const, ...this.reg });
	readonly rateLimited = new Counter({ name: "tgw_rate_limited_total", help: "Requests refused with 429, by limit (principal, auth_failures, login)", labelNames: ["limit"] as const, ...this.reg });

	private readonly samplers = new Map<SampledGauge, Map<string, Sampler>>();

	constructor(labels: { namespace: string; nodeID: string }) {
		this.registry.setDefaultLabels(labels);
	}

	/** Lets `owner` (a service, from its `started`) supply figures of a gauge at scrape time. */
	sample(gauge: SampledGauge, owner: string, read: Sampler): void {
		let owners = this.samplers.get(gauge);
		if (!owners) {
			owners = new Map();
			this.samplers.set(gauge, owners);
			this.createSampledGauge(gauge, owners);
		}
		owners.set(owner, read);
	}

	/** The owner stopped: its figures leave the gauge, and the gauge leaves with its last owner. */
	withdraw(gauge: SampledGauge, owner: string): void {
		const owners = this.samplers.get(gauge);
		if (!owners?.delete(owner) || owners.size > 0) return;
		this.samplers.delete(gauge);
		this.registry.removeSingleMetric(SAMPLED[gauge].name);
	}

	private createSampledGauge(gauge: SampledGauge, owners: Map<string, Sampler>): void {
		const { name, help, labelNames } = SAMPLED[gauge];
		const label = labelNames[0];
		new Gauge({
			name,
			help,
			labelNames: [...labelNames],
			registers: [this.registry],
			async collect() {
				this.reset();
				// A sampler that cannot answer (its database is away) leaves its share out of this scrape.
				const readings = await Promise.allSettled([...owners.values()].map(async (read) => read()));
				for (const reading of readings) {
					if (reading.status !== "fulfilled") continue;
					const value = reading.value;
					if (typeof value === "number") this.inc(value);
					else if (label) for (const [key, n] of Object.entries(value)) this.inc({ [label]: key }, n);
				}
			},
		});
	}
}

const perBroker = new WeakMap<ServiceBroker, GatewayMetrics>();

/** This broker's `tgw_` metrics (made on first use). */
export function metricsOf(broker: ServiceBroker): GatewayMetrics {
	let metrics = perBroker.get(broker);
	if (!metrics) {
		metrics = new GatewayMetrics({ namespace: broker.namespace, nodeID: broker.nodeID });
		perBroker.set(broker, metrics);
	}
	return metrics;
}

/** The Prometheus text of this node: Moleculer's metrics, then the gateway's. */
export async function exposition(broker: ServiceBroker): Promise<string> {
	const reporter = (broker.metrics.reporter ?? []).find((r): r is ScrapedPrometheusReporter => r instanceof ScrapedPrometheusReporter);
	const own = await metricsOf(broker).registry.metrics();
	return (reporter ? reporter.text() : "") + own;
}

/** Compares digests, so neither the content nor the length of the token leaks through timing. */
export function bearerMatches(expected: string, authorization: string | undefined): boolean {
	const given = /^Bearer[ \t]+(\S+)[ \t]*$/i.exec(authorization ?? "")?.[1];
	if (!given) return false;
	const digest = (s: string) => createHash("sha256").update(s).digest();
	return timingSafeEqual(digest(given), digest(expected));
}

function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
	res.writeHead(status, { "Content-Type": "application/json; charset=utf-8", ...headers });
	res.end(JSON.stringify(body));
}

/**
 * The warning a node that serves GET /metrics gives at start when anyone who reaches its address
 * may read it (no METRICS_TOKEN, not loopback); null when there is nothing to say. Logged by what
 * serves /metrics (the api service, the ops server), so a node that serves none (a REPL) is quiet.
 */
export function openMetricsWarning(config: Pick<GatewayConfig, "metricsEnabled" | "metricsToken" | "host" | "port">): string | null {
	const loopback = config.host === "localhost" || config.host === "::1" || config.host.startsWith("127.");
	if (!config.metricsEnabled || config.metricsToken !== null || loopback) return null;
	return `GET /metrics is open to anyone who reaches ${config.host}:${config.port}: set METRICS_TOKEN (or METRICS_ENABLED=false).`;
}

/** GET /metrics, for the api service's route and the ops server alike. */
export async function sendMetrics(broker: ServiceBroker, config: GatewayConfig, req: IncomingMessage, res: ServerResponse): Promise<void> {
	if (!config.metricsEnabled) {
		return sendJson(res, 404, { error: { code: "NOT_FOUND", message: "Metrics are disabled on this node (METRICS_ENABLED=false)" } });
	}
	if (config.metricsToken && !bearerMatches(config.metricsToken, req.headers.authorization)) {
		return sendJson(res, 401, { error: { code: "UNAUTHORIZED", message: "GET /metrics needs Authorization: Bearer <METRICS_TOKEN>" } }, { "WWW-Authenticate": 'Bearer realm="metrics"' });
	}
	try {
		const text = await exposition(broker);
		res.writeHead(200, { "Content-Type": "text/plain; version=0.0.4; charset=utf-8", "Cache-Control": "no-store" });
		res.end(text);
	} catch (err) {
		broker.getLogger("metrics").error("Cannot render /metrics:", err);
		if (!res.headersSent) sendJson(res, 500, { error: { code: "INTERNAL", message: "Internal error" } });
	}
}

/** $routeTemplate: set by a route middleware that may refuse a request before moleculer-web sets $alias. */
export type RoutedRequest = IncomingMessage & { $alias?: { fullPath?: string }; $route?: { path?: string }; $routeTemplate?: string };

/** The route template (never the raw URL, which would make a label per id), or where it was headed. */
export function routeLabel(req: RoutedRequest): string {
	if (req.$alias?.fullPath) return req.$alias.fullPath;
	if (req.$routeTemplate) return req.$routeTemplate;
	if (typeof req.$route?.path === "string") return `${req.$route.path.replace(/\/+$/, "")}/*`;
	return "unmatched";
}

/**
 * Counts every answered request of an HTTP server by route and status. Socket.io's own requests
 * never reach it (socket.io takes them first), nor do WebSocket upgrades.
 */
export function observeHttpRequests(server: Server, metrics: GatewayMetrics): void {
	server.prependListener("request", (req: RoutedRequest, res: ServerResponse) => {
		const started = process.hrtime.bigint();
		res.once("finish", () => {
			const route = routeLabel(req);
			const method = req.method ?? "GET";
			const status = String(res.statusCode);
			const key = `${method} ${route}`;
			metrics.httpRequests.seriesFor(`${key} ${status}`, () => ({ method, route, status })).inc();
			metrics.httpDuration.seriesFor(key, () => ({ method, route })).observe(Number(process.hrtime.bigint() - started) / 1e9);
		});
	});
}
