/**
 * An api node answers every documented route, whether or not a node running its service has joined:
 * 503 UNAVAILABLE with Retry-After while none has (the worker role not started yet), the route
 * itself once one does; a path that is not documented stays 404. The table of documented routes
 * (services/api/aliases.ts) is the set of routes the services generate.
 */
import { join } from "node:path";
import { ServiceBroker } from "moleculer";
import { createBrokerOptions } from "../../moleculer.config";
import { DOCUMENTED_ROUTES } from "../../services/api/aliases";
import { adminToken, api, pollUntil, startAuthGateway } from "../support/auth";
import { startTestGateway, type TestGateway } from "../support/harness";

interface Alias {
	method: string;
	path: string;
	action: string | null;
	_generated?: boolean;
	route: { path: string };
}

describe("the documented routes table", () => {
	it("is exactly what a gateway running every service generates under /api/v1", async () => {
		const gw = await startTestGateway({ env: { TELEGRAM_API_ROOT: "http://127.0.0.1:9", ADMIN_PASSWORD: "admin-password-for-tests" } });
		try {
			const aliases = (gw.broker.getLocalService("api") as unknown as { aliases: Alias[] }).aliases;
			const generated = Object.fromEntries(aliases.filter((a) => a._generated && a.route.path === "/api/v1").map((a) => [`${a.method} ${a.path}`, a.action]));
			expect(generated).toEqual(DOCUMENTED_ROUTES);
		} finally {
			await gw.stop();
		}
	});
});

describe("an api node that has never seen a node running the worker services", () => {
	let gw: TestGateway;
	let admin: string;
	let worker: ServiceBroker | undefined;

	beforeAll(async () => {
		// Two nodes on the Fake transporter, neither running bots, chats or delivery.
		gw = await startAuthGateway({ nodes: [["api", "auth", "realtime"], ["auth"]] });
		admin = await adminToken(gw);
	});
	afterAll(async () => {
		await worker?.stop();
		await gw.stop();
	});

	it.each([
		["GET", "/bots"],
		["GET", "/bots/1"],
		["GET", "/chats"],
		["GET", "/chats/1/messages"],
		["POST", "/chats/1/messages"],
		["GET", "/messages/1"],
		["GET", "/webhooks"],
		["POST", "/webhooks/1/replay"],
	])("%s %s answers 503 UNAVAILABLE with Retry-After, naming the service", async (method, path) => {
		const res = await api(gw.baseUrl, method, path, admin, method === "POST" ? {} : undefined);
		expect({ status: res.status, retryAfter: res.headers.get("retry-after") }).toEqual({ status: 503, retryAfter: "5" });
		expect(res.body).toMatchObject({ error: { code: "UNAVAILABLE", message: expect.stringMatching(/^The (bots|chats|delivery) service is unavailable/) } });
	});

	it("paths that are not documented stay 404, and the services it runs answer", async () => {
		expect((await api(gw.baseUrl, "GET", "/no-such-thing", admin)).status).toBe(404);
		expect((await api(gw.baseUrl, "DELETE", "/chats", admin)).status).toBe(404);
		expect((await api(gw.baseUrl, "GET", "/auth/me", admin)).status).toBe(200);
		expect((await api(gw.baseUrl, "GET", "/chats/1/permissions", admin)).status).not.toBe(503);
	});

	it("serves the routes once a node running the service joins", async () => {
		worker = new ServiceBroker(createBrokerOptions(gw.runtime, { nodeID: "late-worker", transporter: "Fake" }));
		worker.loadService(join(__dirname, "..", "..", "services", "chats.service"));
		await worker.start();
		expect(await pollUntil(async () => (await api(gw.baseUrl, "GET", "/chats", admin)).status === 200, 5_000)).not.toBeNull();
		expect((await api(gw.baseUrl, "GET", "/bots", admin)).status).toBe(503);
	});
});
