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

export interface OpsServer {
	server: Server;
	close(): Promise<void>;
}

export async function startOpsServer(broker: ServiceBroker, runtime: Runtime): Promise<OpsServer> {
	// Started after the broker: serving from the first request until close().
	let phase: NodePhase = "serving";
	const server = createServer((req, res) => {
		const path = (req.url ?? "").split("?")[0];
		// As on an api node: every answer names its request, and what is not served is a 404.
		res.setHeader("X-Request-Id", requestIdFor(req.headers["x-request-id"]));
		const send = (status: number, body: unknown) => {
			res.writeHead(status, { "Content-Type": "application/json; charset=utf-8" });
			res.end(JSON.stringify(body));
		};
		if (req.method !== "GET") return send(404, { error: { code: "NOT_FOUND", message: `Not found: this node serves GET /health, /ready and /metrics only` } });
		if (path === "/health") return send(200, { status: "ok", node: broker.nodeID, uptime_seconds: Math.round(process.uptime()) });
		if (path === "/metrics") return void sendMetrics(broker, runtime.config, req, res);
		if (path === "/ready") {
			readinessChecks(broker, runtime)
				.then((checks) => {
					const report = readinessReport(checks, phase);
					send(report.ok ? 200 : 503, report.body);
				})
				.catch(() => send(503, { status: "unavailable" }));
			return;
		}
		send(404, { error: { code: "NOT_FOUND", message: "Not found" } });
	});
	server.requestTimeout = 10_000;
	await new Promise<void>((resolve, reject) => {
		server.once("error", reject);
		server.listen(runtime.config.port, runtime.config.host, () => resolve());
	});
	return {
		server,
		close: () =>
			new Promise<void>((resolve) => {
				phase = "draining";
				server.close(() => resolve());
				server.closeIdleConnections();
			}),
	};
}
