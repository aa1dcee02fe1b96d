/**
 * A route whose service drops out of the cluster (its node crashed, or the transporter is down)
 * answers 503, not 404: the resource still exists, and a client should try again.
 */
import { adminToken, api, pollUntil, startAuthGateway } from "../support/auth";
import { join } from "node:path";
import { ServiceBroker } from "moleculer";
import { createBrokerOptions } from "../../moleculer.config";
import type { TestGateway } from "../support/harness";

describe("routes of a service whose node is away", () => {
	let gw: TestGateway;
	let admin: string;
	let replacement: ServiceBroker | undefined;

	beforeAll(async () => {
		gw = await startAuthGateway({ nodes: [["api", "auth"], ["chats"]] });
		admin = await adminToken(gw);
	});
	afterAll(async () => {
		await replacement?.stop();
		await gw.stop();
	});

	it("answer 503 while the node is gone, and serve again when it is back", async () => {
		// The api node builds the remote service's routes shortly after it learns of them.
		expect(await pollUntil(async () => (await api(gw.baseUrl, "GET", "/chats", admin)).status === 200, 5_000)).not.toBeNull();

		const chatsNode = gw.nodes[1]!.broker;
		await chatsNode.stop();
		expect(await pollUntil(async () => !(gw.broker.registry as unknown as { hasService(name: string): boolean }).hasService("chats"), 5_000)).not.toBeNull();
		// Past moleculer-web's rebuild of the routes (debounceTime 100 ms).
		await new Promise((resolve) => setTimeout(resolve, 400));

		const away = await api(gw.baseUrl, "GET", "/chats", admin);
		expect({ status: away.status, retryAfter: away.headers.get("retry-after") }).toEqual({ status: 503, retryAfter: "5" });
		expect(away.body).toMatchObject({ error: { code: "UNAVAILABLE", message: expect.stringMatching(/^The chats service is unavailable/) } });
		expect((await api(gw.baseUrl, "GET", "/chats/1/messages", admin)).status).toBe(503);
		// Routes that never existed are still 404, and other services still answer.
		expect((await api(gw.baseUrl, "GET", "/no-such-thing", admin)).status).toBe(404);
		expect((await api(gw.baseUrl, "GET", "/auth/me", admin)).status).toBe(200);

		// A replacement node (a fresh process in production) brings the routes back.
		replacement = new ServiceBroker(createBrokerOptions(gw.runtime, { nodeID: "replacement", transporter: "Fake" }));
		replacement.loadService(join(__dirname, "..", "..", "services", "chats.service"));
		await replacement.start();
		expect(await pollUntil(async () => (await api(gw.baseUrl, "GET", "/chats", admin)).status === 200, 5_000)).not.toBeNull();
	});
});

describe("a Telegram push while ingest is away", () => {
	let gw: TestGateway;
	beforeAll(async () => {
		gw = await startAuthGateway({ nodes: [["api", "auth"]] });
	});
	afterAll(() => gw.stop());

	it("is answered 503, and logged without the bot's secret webhook path", async () => {
		const warn = jest.spyOn(gw.broker.getLocalService("api")!.logger, "warn");
		const path = "c78d4c8a".repeat(8);
		const push = await fetch(`${gw.baseUrl}/api/v1/telegram/webhook/${path}`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ update_id: 1 }) });
		expect(push.status).toBe(503);
		const logged = warn.mock.calls.map((args) => args.join(" ")).join("\n");
		expect(logged).toContain("/webhook/:path");
		expect(logged).not.toContain(path);
	});
});
