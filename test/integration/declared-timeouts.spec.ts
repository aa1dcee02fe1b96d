/**
 * A REST route's call timeout is a default: an action that declares a longer `timeout` keeps it
 * (moleculer-web's callOptions.timeout overrode it, so a bot registration or a replay was cut at the
 * route's 15 s while it still ran). Scaled down: a 150 ms route default, actions taking 400 ms.
 */
import type { AddressInfo } from "node:net";
import type { Server } from "node:http";
import { ServiceBroker, type Middleware } from "moleculer";
import ApiGateway from "moleculer-web";
import { DeclaredTimeoutsMiddleware } from "../../lib/middlewares/declared-timeouts";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe("declared action timeouts behind a REST route", () => {
	const broker = new ServiceBroker({ logger: false, middlewares: [DeclaredTimeoutsMiddleware as unknown as Middleware], retryPolicy: { enabled: false } });
	let base = "";

	beforeAll(async () => {
		broker.createService({
			name: "work",
			actions: {
				long: { timeout: 2_000, rest: "GET /long", handler: () => sleep(400).then(() => ({ done: true })) },
				undeclared: { rest: "GET /undeclared", handler: () => sleep(400).then(() => ({ done: true })) },
				short: { timeout: 50, rest: "GET /short", handler: () => sleep(100).then(() => ({ done: true })) },
			},
		});
		const api = broker.createService({
			name: "api",
			mixins: [ApiGateway],
			settings: { port: 0, host: "127.0.0.1", routes: [{ path: "/", autoAliases: true, callOptions: { timeout: 150, defaultTimeout: true } }] },
		});
		await broker.start();
		await sleep(600); // moleculer-web builds auto aliases shortly after the services start
		base = `http://127.0.0.1:${((api as unknown as { server: Server }).server.address() as AddressInfo).port}`;
	});
	afterAll(() => broker.stop());

	it("an action declaring a longer timeout runs to its end", async () => {
		const res = await fetch(`${base}/work/long`);
		expect([res.status, await res.json()]).toEqual([200, { done: true }]);
	});

	it("an action declaring none gets the route's default", async () => {
		expect((await fetch(`${base}/work/undeclared`)).status).toBe(504);
	});

	it("a shorter declared timeout applies too, and a caller's own limit (not a default) stands", async () => {
		expect((await fetch(`${base}/work/short`)).status).toBe(504);
		await expect(broker.call("work.long", {}, { timeout: 150 })).rejects.toMatchObject({ name: "RequestTimeoutError" });
	});
});
