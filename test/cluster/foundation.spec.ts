/**
 * Three real node processes (one api node, two workers) on NATS + MariaDB + Redis: they find each
 * other, answer cross-node calls, report readiness, and keep answering after a worker is SIGKILLed.
 */
import type { ServiceBroker } from "moleculer";
import { http, tempDir } from "../support/harness";
import { freePort, spawnGateway } from "../support/processes";
import { startCluster, type Cluster } from "./support/cluster";

const WORKER_SERVICES = ["auth", "bots", "chats", "ingest", "broker", "delivery"];

describe("cluster foundation", () => {
	let cluster: Cluster;
	let client: ServiceBroker;

	beforeAll(async () => {
		cluster = await startCluster([
			{ name: "api-1", services: ["api", "realtime"] },
			{ name: "worker-1", services: WORKER_SERVICES },
			{ name: "worker-2", services: WORKER_SERVICES },
		]);
		client = await cluster.client();
		await client.waitForServices(["broker", "auth", "api"], 20_000);
	}, 120_000);

	afterAll(() => cluster?.stop());

	it("every node is ready: database, NATS, Redis cacher and shared state up", async () => {
		const res = await http(cluster.node("api-1").baseUrl, "GET", "/ready");
		expect(res.status).toBe(200);
		expect(res.body).toEqual({ status: "ok", checks: { db: "up", transporter: "up", cacher: "up", state: "up" } });
	});

	it("worker nodes answer the orchestrator's probes on their own port", async () => {
		for (const name of ["worker-1", "worker-2"]) {
			const node = cluster.node(name);
			expect((await http(node.baseUrl, "GET", "/health")).status).toBe(200);
			const ready = await http(node.baseUrl, "GET", "/ready");
			expect(ready.status).toBe(200);
			expect(ready.body).toMatchObject({ status: "ok", checks: { db: "up", transporter: "up" } });
		}
	});

	it("the nodes see each other and the services each one runs", async () => {
		const nodes = (await client.call("$node.list", { onlyAvailable: true })) as Array<{ id: string }>;
		expect(nodes.map((n) => n.id)).toEqual(expect.arrayContaining(["api-1", "worker-1", "worker-2"]));
		const services = (await client.call("$node.services", { onlyAvailable: true, withActions: false })) as Array<{
			name: string;
			nodes: string[];
		}>;
		const where = (name: string) => services.find((s) => s.name === name)?.nodes.sort();
		expect(where("broker")).toEqual(["worker-1", "worker-2"]);
		expect(where("api")).toEqual(["api-1"]);
	});

	it("actions are called across nodes, on each worker", async () => {
		for (const nodeID of ["worker-1", "worker-2"]) {
			await expect(client.call("broker.head", {}, { nodeID })).resolves.toEqual({ seq: 0 });
		}
		// The api node's own calls cross to the workers too: it runs no broker service itself.
		const api = await client.call("$node.health", {}, { nodeID: "api-1" });
		expect(api).toMatchObject({ process: expect.any(Object) });
	});

	it("a second process started with a running node's NODE_ID refuses to start (exit 1, naming it); the running node is untouched", async () => {
		const running = cluster.node("worker-2");
		const duplicate = spawnGateway("worker-2-again", {
			...cluster.env,
			NODE_ID: "worker-2",
			SERVICES: WORKER_SERVICES.join(","),
			PORT: String(await freePort()),
			GRPC_PORT: String(await freePort()),
			DATA_DIR: tempDir("tgw-duplicate-"),
		});
		try {
			await duplicate.waitForOutput(/NODE_ID worker-2 is held by .+ pid \d+: waiting for it/, 20_000);
			expect(await duplicate.exited).toEqual({ code: 1, signal: null });
			expect(duplicate.output()).toMatch(/NODE_ID worker-2 is in use by another running node \(.+ pid \d+\): give each node its own NODE_ID/);
		} finally {
			duplicate.kill("SIGKILL");
		}
		expect(running.child.exitCode).toBeNull();
		expect(running.output()).not.toMatch(/nodeID conflict/);
		await expect(client.call("$node.health", {}, { nodeID: "worker-2" })).resolves.toMatchObject({ process: expect.any(Object) });
	}, 60_000);

	it("a worker killed with SIGKILL does not fail requests: they move to the other worker", async () => {
		const worker = cluster.node("worker-1");
		worker.kill("SIGKILL");
		expect((await worker.exited).signal).toBe("SIGKILL");
		const started = Date.now();
		for (let i = 0; i < 20; i++) {
			await expect(client.call("broker.head")).resolves.toEqual({ seq: 0 });
		}
		const res = await http(cluster.node("api-1").baseUrl, "GET", "/ready");
		expect(res.status).toBe(200);
		// Heartbeat timeout is 5 s: the dead node leaves the registry within it.
		expect(Date.now() - started).toBeLessThan(20_000);
	});

	it("SIGTERM stops a node cleanly (exit 0), closing MySQL, Redis and NATS", async () => {
		const worker = cluster.node("worker-2");
		worker.kill("SIGTERM");
		expect(await worker.exited).toEqual({ code: 0, signal: null });
		expect(worker.output()).toMatch(/stopped cleanly/);
	});
});
