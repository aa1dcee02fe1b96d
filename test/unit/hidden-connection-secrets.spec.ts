/**
 * The NATS and Redis passwords in the broker's options (printed by the REPL's `info`, answered by
 * `$node.options` to any node) are masked once the broker has connected.
 */
import { ServiceBroker, type Middleware } from "moleculer";
import { HiddenConnectionSecretsMiddleware, maskConnectionSecrets } from "../../lib/middlewares/hidden-connection-secrets";

const PASSWORD = "S3cretNatsPw";

describe("HiddenConnectionSecretsMiddleware", () => {
	it("masks the transporter's options once the broker has started", async () => {
		const broker = new ServiceBroker({
			nodeID: "a",
			logger: false,
			transporter: { type: "Fake", options: { url: "nats://natsuser:S3cretNatsPw@127.0.0.1:4222" } },
			middlewares: [HiddenConnectionSecretsMiddleware as unknown as Middleware],
		});
		try {
			await broker.start();
			const shown = JSON.stringify([await broker.call("$node.options"), (broker as unknown as { transit: { tx: { opts: unknown } } }).transit.tx.opts]);
			expect(shown).not.toContain(PASSWORD);
			expect(shown).toContain("natsuser:%5Bredacted%5D@127.0.0.1:4222");
		} finally {
			await broker.stop();
		}
	});

	it("masks URL passwords and credential-named keys, and leaves the rest", () => {
		const options = {
			type: "Redis",
			options: { prefix: "tgw-cache", redis: "redis://default:S3cretRedisPw@10.0.0.1:6379/2", ttl: 30 },
			plain: "redis://10.0.0.1:6379",
			servers: ["10.0.0.1:4222"],
			user: "natsuser",
			pass: "S3cretNatsPw",
		};
		maskConnectionSecrets(options);
		expect(options).toEqual({
			type: "Redis",
			options: { prefix: "tgw-cache", redis: "redis://default:%5Bredacted%5D@10.0.0.1:6379/2", ttl: 30 },
			plain: "redis://10.0.0.1:6379",
			servers: ["10.0.0.1:4222"],
			user: "natsuser",
			pass: "[redacted]",
		});
	});
});
