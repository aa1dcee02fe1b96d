/**
 * RestartedNodesMiddleware: a node killed and started again under the same nodeID before the
 * heartbeat timeout is never "disconnected"; calls in flight to the dead process are rejected when
 * the new instance announces itself instead of waiting for their timeout.
 */
import { randomBytes } from "node:crypto";
import { Errors, ServiceBroker, type Middleware } from "moleculer";
import { RestartedNodesMiddleware } from "../../lib/middlewares/restarted-nodes";

type Transported = ServiceBroker & { transit: { tx: { disconnect(): Promise<void>; send(): Promise<void> } } };

describe("calls in flight to a node that restarted under the same nodeID", () => {
	const namespace = `restart-${randomBytes(3).toString("hex")}`;
	const brokers: ServiceBroker[] = [];
	let release: () => void = () => undefined;

	function broker(nodeID: string, middlewares: unknown[] = []): ServiceBroker {
		const b = new ServiceBroker({ namespace, nodeID, transporter: "Fake", logger: false, heartbeatInterval: 1, heartbeatTimeout: 30, middlewares: middlewares as Middleware[] });
		brokers.push(b);
		return b;
	}

	afterAll(async () => {
		release();
		await Promise.allSettled(brokers.map((b) => b.stop()));
	});

	it("are rejected (retryable) when the new instance announces itself, not left to time out", async () => {
		const caller = broker("api", [RestartedNodesMiddleware]);
		const first = broker("worker");
		const held = new Promise<void>((resolve) => (release = resolve));
		first.createService({ name: "ingest", actions: { receive: () => held.then(() => "answered by the dead process") } });
		await Promise.all([caller.start(), first.start()]);
		await caller.waitForServices("ingest", 5_000);

		const inFlight = caller.call("ingest.receive", {}, { timeout: 20_000, retries: 0 });
		inFlight.catch(() => undefined);
		await new Promise((r) => setTimeout(r, 50));
		// SIGKILL: the process is gone without a goodbye (no DISCONNECT, no more heartbeats).
		const dead = first as Transported;
		await dead.transit.tx.disconnect();
		dead.transit.tx.send = async () => undefined;

		const second = broker("worker");
		second.createService({ name: "ingest", actions: { receive: () => "answered by the new process" } });
		await second.start();

		const err = await inFlight.then(
			() => null,
			(e: unknown) => e,
		);
		expect(err).toBeInstanceOf(Errors.RequestRejectedError);
		expect((err as Errors.MoleculerRetryableError).retryable).toBe(true);
		// Calls made after the restart reach the new process.
		expect(await caller.call("ingest.receive", {}, { timeout: 5_000 })).toBe("answered by the new process");
	});

	it("are left alone when a node only changes its services (same instance)", async () => {
		const caller = brokers[0]!;
		const worker = brokers[2]!;
		let answer: (value: string) => void = () => undefined;
		worker.createService({ name: "slow", actions: { run: () => new Promise<string>((resolve) => (answer = resolve)) } });
		await caller.waitForServices("slow", 5_000);
		const inFlight = caller.call("slow.run", {}, { timeout: 20_000, retries: 0 });
		await new Promise((r) => setTimeout(r, 50));
		// Another service appears on the same instance: an INFO with the same instanceID.
		worker.createService({ name: "other", actions: { ping: () => "pong" } });
		await caller.waitForServices("other", 5_000);
		answer("done");
		expect(await inFlight).toBe("done");
	});
});
