/**
 * Nodes that do not run the api service (workers, gRPC nodes) still answer the orchestrator's
 * probes and Prometheus: a bare HTTP listener on PORT with /health, /ready and /metrics, nothing else.
 */
import { createServer, type Server } from "node:http";
import type { ServiceBroker } from "moleculer";
import { sendMetrics } from "./metrics";
import { requestIdFor } from "./request-id";
import { readinessChecks, readinessReport, type NodePhase } from "./readiness";
import type { Runtime } from "./runtime";

/**
 * Before the broker starts (no checks, /ready 503): `migrating` while this node runs the
 * migrations, `schema_behind` while it waits for someone else to (MIGRATE_ON_START=false),
 * `schema_ahead` while the database holds migrations newer than this build (until they are
 * reverted), `joining` while a cluster node waits for its transporter. `serving` once the broker started.
 */
export type OpsPhase = "migrating" | "schema_behind" | "schema_ahead" | "joining" | "serving";

/** Why a node that has not started yet refuses requests other than /health. */
const NOT_STARTED: Record<Exclude<OpsPhase, "serving">, string> = {
	migrating: "This node is starting (migrating its database); try again shortly",
	schema_behind: "This node is starting (waiting for its database to be migrated); try again shortly",
	schema_ahead: "This node is not started: its database was migrated by a newer build; try again shortly",
	joining: "This node is starting (connecting to the cluster's transporter, TRANSPORTER); try again shortly",
};

/** How long close() lets requests under way finish before it drops their connections. */
const CLOSE_GRACE_MS = 1_000;

/** The phases in which the node has not started: /ready says why, everything but /health is refused. */
function notStarted(phase: NodePhase | OpsPhase): phase is Exclude<OpsPhase, "serving"> {
	return Object.hasOwn(NOT_STARTED, phase);
}

export interface OpsServer {
	server: Server;
	setPhase(phase: OpsPhase): void;
	close(): Promise<void>;
}

/**
 * Started after the broker (`serving`), or before the migrations (`migrating`, `schema_behind`,
 * `schema_ahead`): they may wait for another node's lock, for the migration job, or for a newer
 * build's migrations to be reverted, for minutes, and an
 * orchestrator that gets no answer to /health meanwhile kills the node, perhaps in the middle of a
 * DDL statement.
 */
export async function startOpsServer(broker: ServiceBroker, runtime: Runtime, initialPhase: OpsPhase = "serving"): Promise<OpsServer> {
	let phase: NodePhase | OpsPhase = initialPhase;
	let closing = false;
	const server = createServer((req, res) => {
		const path = (req.url ?? "").split("?")[0];
		// As on an api node: every answer names its request, and what is not served is a 404.
		res.setHeader("X-Request-Id", requestIdFor(req.headers["x-request-id"]));
		// Closing (for the api to take the port, or at shutdown): no connection is kept for a next request.
		if (closing) res.setHeader("Connection", "close");
		const send = (status: number, body: unknown) => {
			res.writeHead(status, { "Content-Type": "application/json; charset=utf-8" });
			// HEAD (a load balancer's probe) is answered as GET, without the body.
			res.end(req.method === "HEAD" ? undefined : JSON.stringify(body));
		};
		const probe = req.method === "GET" || req.method === "HEAD";
		if (probe && path === "/health") return send(200, { status: "ok", node: broker.nodeID, uptime_seconds: Math.round(process.uptime()) });
		if (closing && !probe) {
			// On an api node the API takes this port in a moment: a push or a client is told to try again.
			res.setHeader("Retry-After", "1");
			return send(503, { error: { code: "UNAVAILABLE", message: "This node is starting or stopping; try again shortly" } });
		}
		const current = phase;
		if (notStarted(current)) {
			// Joining: the transporter (NATS) has not answered yet, which is what the checks say once started.
			if (probe && path === "/ready") return send(503, { status: "unavailable", reason: current, ...(current === "joining" ? { checks: { transporter: "down" } } : {}) });
			// On an api node this port is about to serve the API: a request that came early (a Telegram
			// push, a client the balancer sent) is told to try again, not that its route does not exist.
			res.setHeader("Retry-After", "5");
			return send(503, { error: { code: "UNAVAILABLE", message: NOT_STARTED[current] } });
		}
		if (!probe) return send(404, { error: { code: "NOT_FOUND", message: `Not found: this node serves GET /health, /ready and /metrics only` } });
		if (path === "/metrics") return void sendMetrics(broker, runtime.config, req, res);
		if (path === "/ready") {
			readinessChecks(broker, runtime)
				.then((checks) => {
					const report = readinessReport(checks, current);
					send(report.ok ? 200 : 503, report.body);
				})
				.catch(() => send(503, { status: "unavailable" }));
			return;
		}
		send(404, { error: { code: "NOT_FOUND", message: "Not found" } });
	});
	server.requestTimeout = 10_000;
	// A connection that sends nothing is closed too (as the api's, services/api.service.ts).
	server.setTimeout(runtime.config.idleConnectionTimeoutMs);
	await new Promise<void>((resolve, reject) => {
		server.once("error", reject);
		server.listen(runtime.config.port, runtime.config.host, () => resolve());
	});
	return {
		server,
		setPhase: (next) => {
			phase = next;
		},
		close: () =>
			new Promise<void>((resolve) => {
				phase = "draining";
				closing = true;
				server.close(() => resolve());
				server.closeIdleConnections();
				// A client that keeps its connection busy (a Telegram push retried on every 503) is not
				// waited for: the api node's restart waited 75 s on one in the fault suite.
				setTimeout(() => server.closeAllConnections(), CLOSE_GRACE_MS).unref();
			}),
	};
}
