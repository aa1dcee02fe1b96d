/**
 * Against the real NATS: once masked (lib/middlewares/hidden-connection-secrets.ts), the password
 * is gone from what `$node.options` answers to other nodes, and the nodes still talk.
 */
import { ServiceBroker, type Middleware } from "moleculer";
import { HiddenConnectionSecretsMiddleware } from "../../lib/middlewares/hidden-connection-secrets";
import { NATS_URL } from "./support/cluster";

const PASSWORD = "S3cretNatsPw";

describe("HiddenConnectionSecretsMiddleware on NATS", () => {
	it("masks the transporter's password after connecting, and the cluster keeps working", async () => {
		const url = new URL(NATS_URL);
		url.username = "natsuser";
		url.password = PASSWORD;
		const namespace = `hidden-secrets-${process.pid}-${Date.now()}`;
		const transporter = () => ({ type: "NATS", options: { url: url.toString() } });
		const a = new ServiceBroker({ namespace, nodeID: "a", logger: false, transporter: transporter(), middlewares: [HiddenConnectionSecretsMiddleware as unknown as Middleware] });
		const b = new ServiceBroker({ namespace, nodeID: "b", logger: false, transporter: transporter(), middlewares: [HiddenConnectionSecretsMiddleware as unknown as Middleware] });
		b.createService({ name: "echo", actions: { say: (ctx) => ctx.params } });
		try {
			await Promise.all([a.start(), b.start()]);
			await a.waitForServices(["echo"], 10_000);
			const shown = JSON.stringify([await a.call("$node.options", {}, { nodeID: "b" }), (a as unknown as { transit: { tx: { opts: unknown } } }).transit.tx.opts, a.options]);
			expect(shown).not.toContain(PASSWORD);
			expect(shown).toContain("[redacted]");
			await expect(a.call("echo.say", { hello: 1 })).resolves.toEqual({ hello: 1 });
		} finally {
			await Promise.all([a.stop(), b.stop()]);
		}
	});

});
