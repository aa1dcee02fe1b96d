import { existsSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { randomBytes } from "node:crypto";
import { ConfigError, loadConfig, parseEncryptionKeys } from "../../lib/config";
import { openDatabase } from "../../lib/db/connection";
import { tempDir } from "../support/harness";

const key = () => randomBytes(32).toString("base64");
const clusterEnv = () => ({
	TRANSPORTER: "nats://127.0.0.1:4222",
	DATABASE_URL: "mysql://root@127.0.0.1:3306/test",
	REDIS_URL: "redis://127.0.0.1:6379",
	JWT_SECRET: "x".repeat(40),
	TOKEN_ENCRYPTION_KEYS: `k1:${key()}`,
	DATA_DIR: tempDir(),
});

function problemsOf(env: Record<string, string>): string[] {
	try {
		loadConfig(env);
	} catch (err) {
		if (err instanceof ConfigError) return err.problems;
		throw err;
	}
	return [];
}

describe("loadConfig", () => {
	it("runs embedded with no variable set: SQLite under DATA_DIR, every service, port 3000", () => {
		const dataDir = tempDir();
		const config = loadConfig({ DATA_DIR: dataDir });
		expect(config.mode).toBe("embedded");
		expect(config.databaseUrl).toBe(`sqlite:${join(dataDir, "gateway.sqlite")}`);
		expect(config.services).toEqual(["api", "auth", "bots", "chats", "ingest", "broker", "realtime", "delivery", "grpc"]);
		expect(config.port).toBe(3000);
		expect(config.grpcPort).toBe(50051);
		expect(config.transporter).toBeNull();
		expect(config.telegramApiRoot).toBe("https://api.telegram.org");
	});

	it("generates embedded dev secrets once, readable only by the owner, and warns", () => {
		const dataDir = tempDir();
		const first = loadConfig({ DATA_DIR: dataDir });
		const file = join(dataDir, "dev-secrets.json");
		expect(existsSync(file)).toBe(true);
		expect(statSync(file).mode & 0o777).toBe(0o600);
		expect(first.warnings.join()).toMatch(/Generated development secrets/);
		const second = loadConfig({ DATA_DIR: dataDir });
		expect(second.jwt.secret).toBe(first.jwt.secret);
		expect(second.encryptionKeys[0]!.key.equals(first.encryptionKeys[0]!.key)).toBe(true);
		expect(second.warnings).toEqual([]);
		expect(JSON.parse(readFileSync(file, "utf8")).jwt_secret).toBe(first.jwt.secret);
	});

	it("a DATA_DIR it cannot make or write is a configuration error naming DATA_DIR, not a stack trace", () => {
		const file = join(tempDir(), "a-file");
		writeFileSync(file, "");
		for (const dataDir of [join(file, "data"), file]) {
			expect(() => loadConfig({ DATA_DIR: dataDir })).toThrow(new RegExp(`DATA_DIR: cannot keep the gateway's files in ${dataDir.replace(/[.]/g, "\\.")} \\(E`));
		}
	});

	it("leaves the open /metrics warning to what serves /metrics (a REPL node serves none; test/unit/metrics.spec.ts)", () => {
		expect(loadConfig({ ...clusterEnv(), HOST: "0.0.0.0" }).warnings.join()).not.toMatch(/metrics/);
	});

	it("accepts a complete cluster configuration", () => {
		const config = loadConfig({ ...clusterEnv(), SERVICES: "api,auth,realtime", NODE_ID: "api-1" });
		expect(config.mode).toBe("cluster");
		expect(config.services).toEqual(["api", "auth", "realtime"]);
		expect(config.nodeId).toBe("api-1");
		expect(config.host).toBe("0.0.0.0");
	});

	it.each([
		["JWT_SECRET", /JWT_SECRET is required in cluster mode/],
		["TOKEN_ENCRYPTION_KEYS", /TOKEN_ENCRYPTION_KEYS is required in cluster mode/],
		["REDIS_URL", /REDIS_URL is required in cluster mode/],
	])("stops a cluster node without %s and names it", (name, message) => {
		const env: Record<string, string> = clusterEnv();
		delete env[name];
		expect(problemsOf(env).join("\n")).toMatch(message);
	});

	it("refuses SQLite in cluster mode and never writes dev secrets there", () => {
		const env = { ...clusterEnv(), DATABASE_URL: "sqlite:/tmp/x.sqlite" };
		expect(problemsOf(env).join()).toMatch(/cluster mode needs a mysql:\/\/ database/);
		const noSecrets: Record<string, string> = clusterEnv();
		delete noSecrets.JWT_SECRET;
		problemsOf(noSecrets);
		expect(existsSync(join(noSecrets.DATA_DIR!, "dev-secrets.json"))).toBe(false);
	});

	it("reports every bad value at once", () => {
		const problems = problemsOf({
			DATA_DIR: tempDir(),
			PORT: "70000",
			GRPC_PORT: "abc",
			SERVICES: "api,nosuch",
			LOG_LEVEL: "loud",
			WEBHOOK_ALLOW_PRIVATE: "maybe",
			JWT_SECRET: "short",
			TOKEN_ENCRYPTION_KEYS: "k1:" + key(),
		});
		expect(problems).toEqual(
			expect.arrayContaining([
				expect.stringMatching(/^PORT/),
				expect.stringMatching(/^GRPC_PORT/),
				expect.stringMatching(/unknown service "nosuch"/),
				expect.stringMatching(/^LOG_LEVEL/),
				expect.stringMatching(/^WEBHOOK_ALLOW_PRIVATE/),
				expect.stringMatching(/JWT_SECRET must be at least 32/),
			]),
		);
	});

	it("turns metrics on by default, and off with METRICS_ENABLED=false; METRICS_TOKEN is optional", () => {
		const defaults = loadConfig({ DATA_DIR: tempDir() });
		expect(defaults.metricsEnabled).toBe(true);
		expect(defaults.metricsToken).toBeNull();
		const off = loadConfig({ DATA_DIR: tempDir(), METRICS_ENABLED: "false", METRICS_TOKEN: " s3cret " });
		expect(off.metricsEnabled).toBe(false);
		expect(off.metricsToken).toBe("s3cret");
		expect(problemsOf({ DATA_DIR: tempDir(), METRICS_ENABLED: "sometimes" })).toEqual([expect.stringMatching(/^METRICS_ENABLED must be true or false/)]);
	});

	it("leaves tracing off unless TRACING_EXPORTER asks for console, event or zipkin", () => {
		expect(loadConfig({ DATA_DIR: tempDir() }).tracing).toEqual({ exporter: "off", endpoint: null, sampleRate: 1 });
		expect(loadConfig({ DATA_DIR: tempDir(), TRACING_EXPORTER: "Console" }).tracing.exporter).toBe("console");
		expect(loadConfig({ DATA_DIR: tempDir(), TRACING_EXPORTER: "event", TRACING_SAMPLE_RATE: "0.25" }).tracing).toEqual({ exporter: "event", endpoint: null, sampleRate: 0.25 });
		expect(loadConfig({ DATA_DIR: tempDir(), TRACING_EXPORTER: "zipkin", TRACING_ENDPOINT: "http://zipkin:9411/" }).tracing).toEqual({
			exporter: "zipkin",
			endpoint: "http://zipkin:9411",
			sampleRate: 1,
		});
	});

	it.each([
		[{ TRACING_EXPORTER: "zipkin" }, /TRACING_ENDPOINT is required with TRACING_EXPORTER=zipkin/],
		[{ TRACING_EXPORTER: "zipkin", TRACING_ENDPOINT: "zipkin:9411" }, /TRACING_ENDPOINT must be an http\(s\) URL/],
		[{ TRACING_EXPORTER: "jaeger" }, /TRACING_EXPORTER=jaeger needs a package .*jaeger-client.*use zipkin/],
		[{ TRACING_EXPORTER: "datadog" }, /TRACING_EXPORTER=datadog needs a package .*dd-trace/],
		[{ TRACING_EXPORTER: "stdout" }, /TRACING_EXPORTER must be one of off, console, event, zipkin, got "stdout"/],
		[{ TRACING_EXPORTER: "console", TRACING_SAMPLE_RATE: "0" }, /TRACING_SAMPLE_RATE must be a number above 0 and at most 1/],
		[{ TRACING_EXPORTER: "console", TRACING_SAMPLE_RATE: "1.5" }, /TRACING_SAMPLE_RATE must be/],
		[{ TRACING_EXPORTER: "console", TRACING_SAMPLE_RATE: "half" }, /TRACING_SAMPLE_RATE must be/],
	])("refuses tracing settings %p", (env, message) => {
		const problems = problemsOf({ DATA_DIR: tempDir(), ...env });
		expect(problems).toHaveLength(1);
		expect(problems[0]).toMatch(message);
	});

	it("refuses to make new development secrets beside a database that holds tables (a restore without its dev-secrets.json)", async () => {
		const dataDir = tempDir();
		const db = await openDatabase(`sqlite:${join(dataDir, "gateway.sqlite")}`);
		await db.sequelize.query("CREATE TABLE bots (id INTEGER PRIMARY KEY, token_ciphertext TEXT)");
		await db.close();
		expect(problemsOf({ DATA_DIR: dataDir })).toEqual([expect.stringMatching(/dev-secrets\.json is missing, but the database .*gateway\.sqlite exists: .*Put it back/)]);
		expect(existsSync(join(dataDir, "dev-secrets.json"))).toBe(false);
		// With the secrets given, it starts.
		expect(problemsOf({ DATA_DIR: dataDir, JWT_SECRET: "j".repeat(40), TOKEN_ENCRYPTION_KEYS: `k1:${key()}` })).toEqual([]);
		// A database with nothing in it yet (opened once, or an empty file: a first start that stopped early) gets new secrets.
		const fresh = tempDir();
		await (await openDatabase(`sqlite:${join(fresh, "gateway.sqlite")}`)).close();
		expect(problemsOf({ DATA_DIR: fresh })).toEqual([]);
		const emptyFile = tempDir();
		writeFileSync(join(emptyFile, "gateway.sqlite"), "");
		expect(problemsOf({ DATA_DIR: emptyFile })).toEqual([]);
	});

	it("refuses a dev-secrets.json without its secrets instead of signing tokens with an empty key", () => {
		for (const content of ["{}", '{"jwt_secret": "", "token_encryption_keys": ""}', '{"jwt_secret": 5}', "not json", "null"]) {
			const dataDir = tempDir();
			writeFileSync(join(dataDir, "dev-secrets.json"), content);
			const problems = problemsOf({ DATA_DIR: dataDir });
			expect(problems.join("\n")).toMatch(/dev-secrets\.json|JWT_SECRET/);
		}
		// Set in the environment, the file is not needed.
		const dataDir = tempDir();
		writeFileSync(join(dataDir, "dev-secrets.json"), "{}");
		expect(problemsOf({ DATA_DIR: dataDir, JWT_SECRET: "y".repeat(40), TOKEN_ENCRYPTION_KEYS: `k1:${key()}` })).toEqual([]);
	});

	it.each([
		["PORT", "0x10", /PORT must be a port number/],
		["PORT", "1e3", /PORT must be a port number/],
		["RATE_LIMIT_DEFAULT", "0x64", /RATE_LIMIT_DEFAULT must be a positive integer/],
		["DATABASE_URL", "sqlite:", /DATABASE_URL: sqlite: needs a file path/],
		["DATABASE_URL", "sqlite://", /DATABASE_URL: sqlite: needs a file path/],
		["PUBLIC_URL", "http://x y", /PUBLIC_URL must be an http\(s\) URL/],
		["TELEGRAM_API_ROOT", "http://", /TELEGRAM_API_ROOT must be an http\(s\) URL/],
		["TRUST_PROXY", "10.0.0.1,127.0.0.0/8", /TRUST_PROXY: "127.0.0.0\/8" is not an IP address/],
		["TRUST_PROXY", "proxy.internal", /TRUST_PROXY: "proxy.internal" is not an IP address/],
		["METRICS_TOKEN", "abc def", /METRICS_TOKEN must be printable ASCII without spaces/],
		["ADMIN_USERNAME", "Bad Name!", /ADMIN_USERNAME must be/],
		["ADMIN_PASSWORD", "  x  ", /ADMIN_PASSWORD must be 10-256 characters/],
	])("refuses %s=%s, naming it", (name, value, message) => {
		expect(problemsOf({ DATA_DIR: tempDir(), [name]: value }).join("\n")).toMatch(message);
	});

	it("takes ADMIN_USERNAME in lower case (as login looks it up) and ADMIN_PASSWORD as given, spaces kept", () => {
		const config = loadConfig({ DATA_DIR: tempDir(), ADMIN_USERNAME: "Admin", ADMIN_PASSWORD: " long enough secret " });
		expect(config.admin).toEqual({ username: "admin", password: " long enough secret " });
		expect(loadConfig({ DATA_DIR: tempDir(), TRUST_PROXY: "10.0.0.1, ::1", DATABASE_URL: "sqlite::memory:" })).toMatchObject({ trustProxy: ["10.0.0.1", "::1"], databaseUrl: "sqlite::memory:" });
	});

	it("caps keys per user, queued sends per chat and per bot, and subscriptions per connection: defaults, overrides, refusals", () => {
		expect(loadConfig({ DATA_DIR: tempDir() })).toMatchObject({ apiKeysPerUser: 100, sendQueueLimits: { perChat: 100, perBot: 3_000 }, subscriptionsPerConnection: 200 });
		const set = { API_KEYS_PER_USER: "5", SEND_QUEUE_PER_CHAT: "10", SEND_QUEUE_PER_BOT: "50", SUBSCRIPTIONS_PER_CONNECTION: "20" };
		expect(loadConfig({ DATA_DIR: tempDir(), ...set })).toMatchObject({ apiKeysPerUser: 5, sendQueueLimits: { perChat: 10, perBot: 50 }, subscriptionsPerConnection: 20 });
		const problems = problemsOf({ DATA_DIR: tempDir(), API_KEYS_PER_USER: "0", SEND_QUEUE_PER_CHAT: "1e3", SEND_QUEUE_PER_BOT: "-1", SUBSCRIPTIONS_PER_CONNECTION: "many" }).join("\n");
		for (const name of Object.keys(set)) expect(problems).toMatch(new RegExp(`${name} must be a positive integer`));
	});

	it("caps live connections per principal (1,000) and per user (5 principals' worth unless set)", () => {
		expect(loadConfig({ DATA_DIR: tempDir() })).toMatchObject({ liveConnectionsPerPrincipal: 1_000, liveConnectionsPerUser: 5_000 });
		expect(loadConfig({ DATA_DIR: tempDir(), LIVE_CONNECTIONS_PER_PRINCIPAL: "20000" })).toMatchObject({ liveConnectionsPerPrincipal: 20_000, liveConnectionsPerUser: 100_000 });
		expect(loadConfig({ DATA_DIR: tempDir(), LIVE_CONNECTIONS_PER_USER: "1500" })).toMatchObject({ liveConnectionsPerPrincipal: 1_000, liveConnectionsPerUser: 1_500 });
		expect(problemsOf({ DATA_DIR: tempDir(), LIVE_CONNECTIONS_PER_USER: "0" }).join()).toMatch(/LIVE_CONNECTIONS_PER_USER must be a positive integer/);
	});

	it("closes connections that do nothing after 60 s unless IDLE_CONNECTION_TIMEOUT_MS says otherwise", () => {
		expect(loadConfig({ DATA_DIR: tempDir() })).toMatchObject({ idleConnectionTimeoutMs: 60_000 });
		expect(loadConfig({ DATA_DIR: tempDir(), IDLE_CONNECTION_TIMEOUT_MS: "1000" })).toMatchObject({ idleConnectionTimeoutMs: 1_000 });
		expect(problemsOf({ DATA_DIR: tempDir(), IDLE_CONNECTION_TIMEOUT_MS: "0" }).join()).toMatch(/IDLE_CONNECTION_TIMEOUT_MS must be a positive integer/);
	});

	it("caps live connections per node (20,000 unless set)", () => {
		expect(loadConfig({ DATA_DIR: tempDir() })).toMatchObject({ liveConnectionsPerNode: 20_000 });
		expect(loadConfig({ DATA_DIR: tempDir(), LIVE_CONNECTIONS_PER_NODE: "5000" })).toMatchObject({ liveConnectionsPerNode: 5_000 });
		for (const bad of ["0", "-1", "many"]) {
			expect(problemsOf({ DATA_DIR: tempDir(), LIVE_CONNECTIONS_PER_NODE: bad }).join()).toMatch(/LIVE_CONNECTIONS_PER_NODE must be a positive integer/);
		}
	});

	it("SERVICES in any order starts them in the order they need (realtime after api); a service listed twice, or a list of blanks, is refused", () => {
		expect(loadConfig({ ...clusterEnv(), SERVICES: "realtime, auth ,api" }).services).toEqual(["api", "auth", "realtime"]);
		expect(problemsOf({ ...clusterEnv(), SERVICES: "auth,auth,bots" })).toEqual([expect.stringMatching(/^SERVICES: auth listed more than once/)]);
		expect(problemsOf({ ...clusterEnv(), SERVICES: ", ," })).toEqual([expect.stringMatching(/^SERVICES: ", ," names no service/)]);
	});

	it("PORT and GRPC_PORT the same on any grpc node is refused: PORT serves /health and /ready there", () => {
		expect(problemsOf({ ...clusterEnv(), SERVICES: "grpc,auth", PORT: "7000", GRPC_PORT: "7000" })).toEqual([expect.stringMatching(/^PORT and GRPC_PORT are both 7000: .*\/health, \/ready and \/metrics/)]);
	});

	it("warns when an access token would outlive its login's refresh token", () => {
		expect(loadConfig({ DATA_DIR: tempDir(), JWT_ACCESS_TTL: "600", JWT_REFRESH_TTL: "300" }).warnings).toEqual(expect.arrayContaining([expect.stringMatching(/^JWT_ACCESS_TTL \(600 s\) is longer than JWT_REFRESH_TTL \(300 s\)/)]));
		expect(loadConfig({ DATA_DIR: tempDir() }).warnings.filter((w) => w.startsWith("JWT_ACCESS_TTL"))).toEqual([]);
	});

	it("a DATABASE_URL whose password holds an unencoded '/' says to percent-encode it, not that the database is missing", () => {
		expect(problemsOf({ ...clusterEnv(), DATABASE_URL: "mysql://root:ab/cd+e=@127.0.0.1:3306/gateway" })).toEqual([expect.stringMatching(/^DATABASE_URL cannot be read: .*percent-encoded/)]);
		expect(problemsOf({ ...clusterEnv(), DATABASE_URL: "mysql://root:ab%2Fcd@127.0.0.1:3306/gateway" })).toEqual([]);
		expect(problemsOf({ ...clusterEnv(), DATABASE_URL: "mysql://root@127.0.0.1:3306/" })).toEqual([expect.stringMatching(/^DATABASE_URL must name the database/)]);
	});

	it("refuses a PUBLIC_URL on a domain reserved for examples (the manifests' placeholder left unedited)", () => {
		for (const url of ["https://gateway.example.com", "https://hooks.example.org/base", "https://gw.example", "https://x.invalid"]) {
			expect(problemsOf({ DATA_DIR: tempDir(), PUBLIC_URL: url })).toEqual([expect.stringMatching(/^PUBLIC_URL names .*, a domain reserved for examples/)]);
		}
		expect(problemsOf({ DATA_DIR: tempDir(), PUBLIC_URL: "https://gateway.examples.com" })).toEqual([]);
	});

	it("needs api on the node that runs realtime", () => {
		expect(problemsOf({ DATA_DIR: tempDir(), SERVICES: "realtime,auth" }).join()).toMatch(/realtime .* needs api/);
	});

	it("refuses, without TRANSPORTER, a SERVICES list that leaves out services no other node could run", () => {
		expect(problemsOf({ DATA_DIR: tempDir(), SERVICES: "api,auth,realtime" })).toEqual([
			"SERVICES: without TRANSPORTER this process is the whole gateway (embedded mode), and bots, chats, ingest, broker, delivery would run nowhere: " +
				"set TRANSPORTER to make it one node of a cluster, or leave SERVICES unset (api, realtime and grpc may be left out)",
		]);
		// The entry points may be left out (an embedded gateway without gRPC), and a cluster node runs any role.
		expect(problemsOf({ DATA_DIR: tempDir(), SERVICES: "api,auth,bots,chats,ingest,broker,realtime,delivery" })).toEqual([]);
		expect(problemsOf({ ...clusterEnv(), SERVICES: "api,auth,realtime" })).toEqual([]);
	});
});

describe("parseEncryptionKeys", () => {
	it("reads id:key pairs, the first one active", () => {
		const problems: string[] = [];
		const keys = parseEncryptionKeys(`new:${key()}, old:${key()}`, problems);
		expect(problems).toEqual([]);
		expect(keys.map((k) => k.id)).toEqual(["new", "old"]);
		expect(keys[0]!.key).toHaveLength(32);
	});

	it.each([
		["k1:" + randomBytes(16).toString("base64"), /must decode from base64 to 32 bytes/],
		[":" + key(), /each entry must be <id>:<base64 key>/],
		[`a:${key()},a:${key()}`, /appears twice/],
		// MySQL's key_id columns compare without case: rotation to K1 would skip rows sealed with k1.
		[`K1:${key()},k1:${key()}`, /"K1" and "k1" differ only in letter case/],
	])("rejects %s", (raw, message) => {
		const problems: string[] = [];
		parseEncryptionKeys(raw, problems);
		expect(problems.join()).toMatch(message);
	});
});

describe("WEBHOOK_DELIVERY_RETENTION_DAYS", () => {
	const days = (value?: string) => loadConfig({ ...clusterEnv(), ...(value === undefined ? {} : { WEBHOOK_DELIVERY_RETENTION_DAYS: value }) }).webhookDeliveryRetentionDays;

	it("is 30 days unless set; 0 keeps deliveries for ever", () => {
		expect(days()).toBe(30);
		expect(days("0")).toBe(0);
		expect(days("7")).toBe(7);
	});

	it.each(["-1", "1.5", "a week"])("refuses %j, naming the setting", (value) => {
		expect(problemsOf({ ...clusterEnv(), WEBHOOK_DELIVERY_RETENTION_DAYS: value })).toEqual([
			`WEBHOOK_DELIVERY_RETENTION_DAYS must be a whole number (0 or more), got "${value}"`,
		]);
	});
});

describe("TELEGRAM_UPDATE_RETENTION_HOURS (the de-duplication window)", () => {
	const hours = (value?: string) => loadConfig({ ...clusterEnv(), ...(value === undefined ? {} : { TELEGRAM_UPDATE_RETENTION_HOURS: value }) }).telegramUpdateRetentionHours;

	it("is 72 hours unless set; any value from 24 to 167 hours is taken", () => {
		expect(hours()).toBe(72);
		expect(hours("24")).toBe(24);
		expect(hours("167")).toBe(167);
	});

	it.each(["0", "23", "168", "720"])("refuses %j: under Telegram's 24 hours of redelivery, or a week and more (ids start again at random)", (value) => {
		expect(problemsOf({ ...clusterEnv(), TELEGRAM_UPDATE_RETENTION_HOURS: value })).toEqual([expect.stringMatching(new RegExp(`^TELEGRAM_UPDATE_RETENTION_HOURS must be 24-167 hours, got "${value}": `))]);
	});

	it.each(["-1", "1.5", "3 days"])("refuses %j, naming the setting", (value) => {
		expect(problemsOf({ ...clusterEnv(), TELEGRAM_UPDATE_RETENTION_HOURS: value })).toEqual([`TELEGRAM_UPDATE_RETENTION_HOURS must be a whole number (0 or more), got "${value}"`]);
	});
});

describe("SECURITY_EVENT_RETENTION_DAYS and EVENT_RETENTION_DAYS", () => {
	const config = (env: Record<string, string> = {}) => loadConfig({ ...clusterEnv(), ...env });

	it("keep security events 90 days and the event log for ever unless set; 0 keeps for ever", () => {
		expect(config()).toMatchObject({ securityEventRetentionDays: 90, eventRetentionDays: 0 });
		expect(config({ SECURITY_EVENT_RETENTION_DAYS: "0", EVENT_RETENTION_DAYS: "14" })).toMatchObject({ securityEventRetentionDays: 0, eventRetentionDays: 14 });
	});

	it("report every bad value at once, each naming its setting", () => {
		expect(problemsOf({ ...clusterEnv(), SECURITY_EVENT_RETENTION_DAYS: "-5", EVENT_RETENTION_DAYS: "a week" })).toEqual([
			'SECURITY_EVENT_RETENTION_DAYS must be a whole number (0 or more), got "-5"',
			'EVENT_RETENTION_DAYS must be a whole number (0 or more), got "a week"',
		]);
	});
});

describe("loadConfig refuses what it would otherwise turn into a broken node", () => {
	it.each(["https://gw.example.com/?src=telegram", "https://gw.example.com/#hook"])(
		"PUBLIC_URL with a query or fragment (%s): the webhook URL would be <PUBLIC_URL>/api/v1/... and never reach the receiver",
		(publicUrl) => {
			const problems = problemsOf({ ...clusterEnv(), PUBLIC_URL: publicUrl });
			expect(problems.some((p) => p.includes("PUBLIC_URL"))).toBe(true);
		},
	);

	it("a mysql:// DATABASE_URL that names no database (GET_LOCK(NULL) later fails as 'could not take the migration lock within 120 s')", () => {
		const problems = problemsOf({ ...clusterEnv(), DATABASE_URL: "mysql://root@127.0.0.1:3306" });
		expect(problems.some((p) => p.includes("DATABASE_URL"))).toBe(true);
	});

	it("PORT equal to GRPC_PORT on a node that runs both api and grpc", () => {
		const problems = problemsOf({ DATA_DIR: tempDir(), PORT: "18999", GRPC_PORT: "18999" });
		expect(problems.some((p) => p.includes("GRPC_PORT"))).toBe(true);
	});
});
