/**
 * /ready's transporter check against a NATS server that goes away. Moleculer keeps its transit
 * "connected" until its own graceful disconnect, so a node cut off from NATS stayed ready (and in
 * the load balancer) while every remote call failed with 503. A private nats-server is killed here.
 */
import { ServiceBroker } from "moleculer";
import { readinessChecks } from "../../lib/readiness";
import type { Runtime } from "../../lib/runtime";
import { StoreProcess } from "../faults/support/stores";
import { freePort } from "../support/processes";

describe("/ready and the NATS transporter", () => {
	let nats: StoreProcess;
	let broker: ServiceBroker;
	const runtime = { db: { ping: async () => undefined }, state: { kind: "memory" } } as unknown as Runtime;

	beforeAll(async () => {
		const port = await freePort();
		nats = new StoreProcess("nats", port, `nats://127.0.0.1:${port}`, "/usr/sbin/nats-server", ["-a", "127.0.0.1", "-p", String(port)]);
		await nats.start();
		broker = new ServiceBroker({ nodeID: "readiness-probe", logger: false, transporter: { type: "NATS", options: { url: nats.url, maxReconnectAttempts: -1, reconnectTimeWait: 200 } } });
		await broker.start();
	});
	afterAll(async () => {
		await broker?.stop();
		await nats?.kill();
	});

	it("is up while NATS answers, down within a probe's timeout once it is gone, and up again after it is back", async () => {
		expect((await readinessChecks(broker, runtime)).transporter).toBe("up");
		await nats.kill();
		expect((await readinessChecks(broker, runtime)).transporter).toBe("down");
		await nats.start();
		let state = "down";
		for (let i = 0; i < 50 && state !== "up"; i++) {
			await new Promise((r) => setTimeout(r, 200));
			state = (await readinessChecks(broker, runtime)).transporter;
		}
		expect(state).toBe("up");
	}, 30_000);
});
