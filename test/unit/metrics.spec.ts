import type { IncomingMessage } from "node:http";
import { ServiceBroker } from "moleculer";
import { bearerMatches, GatewayMetrics, metricsOf, openMetricsWarning, routeLabel } from "../../lib/metrics";
import { parseExposition, valueOf } from "../support/prometheus-text";

const LABELS = { namespace: "tgw", nodeID: "unit-1" };
const scrape = async (metrics: GatewayMetrics) => parseExposition(await metrics.registry.metrics());

describe("bearerMatches", () => {
	it.each([
		["Bearer secret-token", true],
		["bearer secret-token", true],
		["Bearer   secret-token  ", true],
		["Bearer secret-tokenx", false],
		["Bearer secret-toke", false],
		["Bearer ", false],
		["Basic secret-token", false],
		["secret-token", false],
		["Bearer secret-token extra", false],
		["", false],
	])("%p -> %p", (header, expected) => {
		expect(bearerMatches("secret-token", header)).toBe(expected);
	});

	it("refuses a missing header", () => {
		expect(bearerMatches("secret-token", undefined)).toBe(false);
	});
});

describe("routeLabel", () => {
	const req = (extra: object) => Object.assign({} as IncomingMessage, extra);

	it("is the alias template, never the path with its ids", () => {
		expect(routeLabel(req({ url: "/api/v1/chats/17", $alias: { fullPath: "/api/v1/chats/:id" }, $route: { path: "/api/v1" } }))).toBe("/api/v1/chats/:id");
	});

	it("falls back to the route's prefix, then to unmatched", () => {
		expect(routeLabel(req({ url: "/api/v1/nope/1", $route: { path: "/api/v1" } }))).toBe("/api/v1/*");
		expect(routeLabel(req({ url: "/", $route: { path: "/" } }))).toBe("/*");
		expect(routeLabel(req({ url: "/whatever" }))).toBe("unmatched");
	});
});

describe("GatewayMetrics samplers", () => {
	it("adds up the owners of a gauge at scrape time, by label", async () => {
		const metrics = new GatewayMetrics(LABELS);
		let open = 2;
		metrics.sample("live_connections", "realtime", () => ({ socketio: open, websocket: 1, grpc: 0 }));
		metrics.sample("live_connections", "grpc", async () => ({ socketio: 0, websocket: 0, grpc: 3 }));
		let text = await scrape(metrics);
		expect(["socketio", "websocket", "grpc"].map((transport) => valueOf(text, "tgw_live_connections", { transport }))).toEqual([2, 1, 3]);
		open = 0;
		text = await scrape(metrics);
		expect(valueOf(text, "tgw_live_connections", { transport: "socketio", ...LABELS })).toBe(0);
	});

	it("leaves out an owner that cannot answer, keeping the others", async () => {
		const metrics = new GatewayMetrics(LABELS);
		metrics.sample("send_queue_depth", "bots", () => 4);
		metrics.sample("send_queue_depth", "broken", () => Promise.reject(new Error("database away")));
		expect(valueOf(await scrape(metrics), "tgw_send_queue_depth")).toBe(4);
	});

	it("shows a gauge only while some service samples it", async () => {
		const metrics = new GatewayMetrics(LABELS);
		expect((await scrape(metrics)).types.has("tgw_webhook_breakers")).toBe(false);
		metrics.sample("webhook_breakers", "delivery", () => ({ closed: 1, open: 0, half_open: 0 }));
		metrics.sample("webhook_breakers", "delivery-2", () => ({ closed: 0, open: 1, half_open: 0 }));
		metrics.withdraw("webhook_breakers", "delivery");
		const text = await scrape(metrics);
		expect(valueOf(text, "tgw_webhook_breakers", { state: "closed" })).toBe(0);
		expect(valueOf(text, "tgw_webhook_breakers", { state: "open" })).toBe(1);
		metrics.withdraw("webhook_breakers", "delivery-2");
		metrics.withdraw("webhook_breakers", "never-sampled");
		expect((await scrape(metrics)).types.has("tgw_webhook_breakers")).toBe(false);
	});
});

describe("metricsOf", () => {
	it("keeps one registry per broker, labelled with its namespace and node", async () => {
		const a = new ServiceBroker({ logger: false, nodeID: "node-a", namespace: "ns1" });
		const b = new ServiceBroker({ logger: false, nodeID: "node-b", namespace: "ns1" });
		expect(metricsOf(a)).toBe(metricsOf(a));
		expect(metricsOf(a)).not.toBe(metricsOf(b));
		metricsOf(a).eventsEmitted.inc({ type: "new_message" }, 3);
		expect(valueOf(await scrape(metricsOf(a)), "tgw_events_emitted_total", { type: "new_message", nodeID: "node-a", namespace: "ns1" })).toBe(3);
		expect(valueOf(await scrape(metricsOf(b)), "tgw_events_emitted_total")).toBe(0);
	});
});

describe("openMetricsWarning", () => {
	const open = { metricsEnabled: true, metricsToken: null, host: "0.0.0.0", port: 3000 };

	it("warns a node that serves /metrics without a token on an address other than loopback", () => {
		expect(openMetricsWarning(open)).toBe("GET /metrics is open to anyone who reaches 0.0.0.0:3000: set METRICS_TOKEN (or METRICS_ENABLED=false).");
	});

	it.each([
		["a token", { metricsToken: "scrape-token" }],
		["metrics off", { metricsEnabled: false }],
		["loopback", { host: "127.0.0.1" }],
		["localhost", { host: "localhost" }],
		["IPv6 loopback", { host: "::1" }],
	])("is quiet with %s", (_what, change) => {
		expect(openMetricsWarning({ ...open, ...change })).toBeNull();
	});
});
