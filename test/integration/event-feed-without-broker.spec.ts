/**
 * An api node whose cluster runs no broker service yet (the worker role not started): its event
 * feeds wait for the log without asking Moleculer for an action no node runs (which logged a
 * warning four times a second), say so once, and say when the log is back.
 */
import { join } from "node:path";
import { ServiceBroker, type BrokerOptions } from "moleculer";
import { createBrokerOptions } from "../../moleculer.config";
import { pollUntil, sleep } from "../support/auth";
import { startTestGateway, type TestGateway } from "../support/harness";

describe("event feeds on a node that sees no broker service", () => {
	const lines: string[] = [];
	let gw: TestGateway;
	let brokerNode: ServiceBroker | undefined;
	const logger: BrokerOptions["logger"] = { type: "Console", options: { level: "info", colors: false, formatter: "full" } };

	beforeAll(async () => {
		for (const method of ["log", "warn", "error"] as const) jest.spyOn(console, method).mockImplementation((...args: unknown[]) => void lines.push(args.join(" ")));
		gw = await startTestGateway({ nodes: [["api", "auth", "realtime"], ["auth"]], brokerOptions: { logger } });
	});
	afterAll(async () => {
		await brokerNode?.stop();
		await gw.stop();
		jest.restoreAllMocks();
	});

	it("say once that they wait, and when the log is back, with no warning per poll", async () => {
		await sleep(3_500);
		expect(lines.filter((line) => /is not registered/.test(line))).toEqual([]);
		expect(lines.filter((line) => /Event feed waits to join the event log/.test(line))).toHaveLength(1);

		brokerNode = new ServiceBroker(createBrokerOptions(gw.runtime, { nodeID: "late-worker", transporter: "Fake", logger }));
		brokerNode.loadService(join(__dirname, "..", "..", "services", "broker.service"));
		await brokerNode.start();
		const found = await pollUntil(async () => lines.some((line) => /REALTIME: Event feed reads the event log again/.test(line)), 5_000);
		if (found === null) console.info(lines.join("\n"));
		expect(found).not.toBeNull();
	}, 20_000);
});
