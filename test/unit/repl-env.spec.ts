import { maskSecrets } from "../../lib/repl/env";

describe("maskSecrets (the REPL's env command)", () => {
	it("masks secret-named variables and the passwords of URLs, and keeps the rest", () => {
		const env: NodeJS.ProcessEnv = {
			JWT_SECRET: "s".repeat(40),
			TOKEN_ENCRYPTION_KEYS: "k1:abc,k0:def",
			ADMIN_PASSWORD: "correct horse battery",
			METRICS_TOKEN: "scrape",
			DATABASE_URL: "mysql://gateway:db-pass@db:3306/tgw",
			TRANSPORTER: "nats://a:nats-pass@n1:4222, nats://n2:4222",
			REDIS_URL: "redis://redis:6379",
			PORT: "3000",
			EMPTY_SECRET: "",
		};
		maskSecrets(env);
		expect(env).toEqual({
			JWT_SECRET: "[redacted]",
			TOKEN_ENCRYPTION_KEYS: "[redacted]",
			ADMIN_PASSWORD: "[redacted]",
			METRICS_TOKEN: "[redacted]",
			DATABASE_URL: "mysql://gateway:%5Bredacted%5D@db:3306/tgw",
			TRANSPORTER: "nats://a:%5Bredacted%5D@n1:4222,nats://n2:4222",
			REDIS_URL: "redis://redis:6379",
			PORT: "3000",
			EMPTY_SECRET: "",
		});
	});
});
