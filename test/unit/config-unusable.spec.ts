/**
 * Settings loadConfig refuses because the node could not work with them (they were accepted once,
 * and failed later with a misleading message, or silently).
 */
import { ConfigError, loadConfig } from "../../lib/config";
import { tempDir } from "../support/harness";

const dataDir = tempDir();

const cluster = {
	TRANSPORTER: "nats://127.0.0.1:4222",
	REDIS_URL: "redis://127.0.0.1:6379",
	JWT_SECRET: "x".repeat(40),
	TOKEN_ENCRYPTION_KEYS: `k1:${Buffer.alloc(32, 1).toString("base64")}`,
};

function problemsOf(env: Record<string, string>): string[] {
	try {
		loadConfig(env);
	} catch (err) {
		if (err instanceof ConfigError) return err.problems;
		throw err;
	}
	return [];
}

describe("loadConfig refuses what it would otherwise turn into a broken node", () => {
	it.each(["https://gw.example.com/?src=telegram", "https://gw.example.com/#hook"])(
		"PUBLIC_URL with a query or fragment (%s): the webhook URL would be <PUBLIC_URL>/api/v1/... and never reach the receiver",
		(publicUrl) => {
			const problems = problemsOf({ ...cluster, DATABASE_URL: "mysql://root@127.0.0.1:3306/gateway", PUBLIC_URL: publicUrl });
			expect(problems.some((p) => p.includes("PUBLIC_URL"))).toBe(true);
		},
	);

	it("a mysql:// DATABASE_URL that names no database (GET_LOCK(NULL) later fails as 'could not take the migration lock within 120 s')", () => {
		const problems = problemsOf({ ...cluster, DATABASE_URL: "mysql://root@127.0.0.1:3306" });
		expect(problems.some((p) => p.includes("DATABASE_URL"))).toBe(true);
	});

	it("PORT equal to GRPC_PORT on a node that runs both api and grpc", () => {
		const problems = problemsOf({ DATA_DIR: dataDir, PORT: "18999", GRPC_PORT: "18999" });
		expect(problems.some((p) => p.includes("GRPC_PORT"))).toBe(true);
	});
});
