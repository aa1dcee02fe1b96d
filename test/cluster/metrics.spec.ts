/**
 * GET /metrics in a real cluster (one api node, two workers, as separate processes): every node
 * serves its own figures on its own port, labelled with its node id, behind METRICS_TOKEN; the api
 * node on its REST port, the workers on their probe listener.
 */
import { http } from "../support/harness";
import { parseExposition, samplesOf, valueOf, type Exposition } from "../support/prometheus-text";
import { startCluster, type Cluster } from "./support/cluster";

const WORKER_SERVICES = ["auth", "bots", "chats", "ingest", "broker", "delivery"];
const TOKEN = "cluster-metrics-token-0123456789";

describe("metrics in a cluster", () => {
	let cluster: Cluster;

	const scrape = async (name: string): Promise<Exposition> => {
		const res = await http(cluster.node(name).baseUrl, "GET", "/metrics", { headers: { authorization: `Bearer ${TOKEN}` } });
		if (res.status !== 200) throw new Error(`${name}: GET /metrics answered ${res.status}: ${res.text}`);
		return parseExposition(res.text);
	};

	beforeAll(async () => {
		cluster = await startCluster(
			[
				{ name: "api-1", services: ["api", "auth", "realtime"] },
				{ name: "worker-1", services: WORKER_SERVICES },
				{ name: "worker-2", services: WORKER_SERVICES },
			],
			{ METRICS_TOKEN: TOKEN },
		);
	}, 120_000);

	afterAll(() => cluster?.stop());

	it("every node needs the token", async () => {
		for (const name of ["api-1", "worker-1", "worker-2"]) {
			expect((await http(cluster.node(name).baseUrl, "GET", "/metrics")).status).toBe(401);
			expect((await http(cluster.node(name).baseUrl, "GET", "/metrics", { headers: { authorization: "Bearer wrong" } })).status).toBe(401);
		}
	});

	it("each node shows its own figures, labelled with its node id and the namespace", async () => {
		for (const name of ["api-1", "worker-1", "worker-2"]) {
			const metrics = await scrape(name);
			expect(metrics.samples.length).toBeGreaterThan(0);
			for (const sample of metrics.samples) expect(sample.labels).toMatchObject({ nodeID: name, namespace: cluster.namespace });
			// Moleculer's own metrics of a real process: transit over NATS and the process itself.
			expect(valueOf(metrics, "moleculer_transit_publish_total")).toBeGreaterThan(0);
			expect([...metrics.types.keys()].some((family) => family.startsWith("process_"))).toBe(true);
		}
	});

	it("the api node counts its HTTP answers and connections; the workers their queue and breakers", async () => {
		for (let i = 0; i < 3; i++) expect((await http(cluster.node("api-1").baseUrl, "GET", "/health")).status).toBe(200);
		const api = await scrape("api-1");
		expect(valueOf(api, "tgw_http_requests_total", { method: "GET", route: "/health", status: "200" })).toBeGreaterThanOrEqual(3);
		expect(samplesOf(api, "tgw_live_connections").map((s) => s.labels.transport).sort()).toEqual(["grpc", "socketio", "websocket"]);
		expect(api.types.has("tgw_send_queue_depth")).toBe(false);

		for (const name of ["worker-1", "worker-2"]) {
			const worker = await scrape(name);
			expect(samplesOf(worker, "tgw_send_queue_depth")).toHaveLength(1);
			expect(valueOf(worker, "tgw_send_queue_depth")).toBe(0);
			expect(samplesOf(worker, "tgw_webhook_breakers").map((s) => s.labels.state).sort()).toEqual(["closed", "half_open", "open"]);
			expect(worker.types.has("tgw_live_connections")).toBe(false);
			expect(samplesOf(worker, "tgw_http_requests_total")).toEqual([]);
		}
	});
});
