/**
 * Moleculer's circuit breaker routes calls around a failing node. A lone (embedded) node has no
 * other to route to: an open breaker on its only endpoint refused every call for 10 s after a
 * stall, Telegram's pushes included, saying no node ran the service. It is off there, on in a cluster.
 */
import { Errors, ServiceBroker } from "moleculer";
import { createBrokerOptions } from "../../moleculer.config";
import { loadConfig } from "../../lib/config";
import { openRuntime, type Runtime } from "../../lib/runtime";
import { tempDir } from "../support/harness";

describe("the circuit breaker on a lone node", () => {
	let runtime: Runtime;
	let broker: ServiceBroker;
	beforeAll(async () => {
		runtime = await openRuntime(loadConfig({ LOG_LEVEL: "fatal", DATA_DIR: tempDir() }));
		broker = new ServiceBroker(createBrokerOptions(runtime, { nodeID: "lone", transporter: null, logger: false }));
		let calls = 0;
		broker.createService({
			name: "flaky",
			actions: {
				work: {
					retryPolicy: { enabled: false },
					handler: () => {
						calls += 1;
						if (calls <= 30) throw new Errors.MoleculerError("the store stalled", 500, "STALLED");
						return "answered";
					},
				},
			},
		});
		await broker.start();
	});
	afterAll(async () => {
		await broker.stop();
		await runtime.close();
	});

	it("is off: past 30 failures in a row, the next call still reaches the only endpoint", async () => {
		for (let i = 0; i < 30; i++) await expect(broker.call("flaky.work")).rejects.toMatchObject({ code: 500 });
		await expect(broker.call("flaky.work")).resolves.toBe("answered");
	});

	it("is on in cluster mode", () => {
		const cluster = { ...runtime, config: { ...runtime.config, transporter: "nats://127.0.0.1:4222" } };
		expect(createBrokerOptions(cluster as Runtime).circuitBreaker).toMatchObject({ enabled: true });
		expect(createBrokerOptions(runtime).circuitBreaker).toMatchObject({ enabled: false });
	});
});
