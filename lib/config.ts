/**
 * The gateway's configuration, read from the environment once per process (see README, "Environment").
 * Embedded mode (no TRANSPORTER) works with no variable set at all; cluster mode refuses to start
 * without the secrets and shared stores that several nodes must agree on.
 */
import { randomBytes } from "node:crypto";
import { chmodSync, closeSync, existsSync, mkdirSync, openSync, readFileSync, readSync, statSync, writeFileSync } from "node:fs";
import { isIP } from "node:net";
import { hostname } from "node:os";
import { join, resolve } from "node:path";

export const ALL_SERVICES = ["api", "auth", "bots", "chats", "ingest", "broker", "realtime", "delivery", "grpc"] as const;
export type ServiceName = (typeof ALL_SERVICES)[number];
/** What an embedded process must run itself (nothing else can); api, realtime and grpc are entry points it may leave out. */
const EMBEDDED_CORE: readonly ServiceName[] = ["auth", "bots", "chats", "ingest", "broker", "delivery"];

const LOG_LEVELS = ["fatal", "error", "warn", "info", "debug", "trace"] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

export interface EncryptionKey {
	id: string;
	key: Buffer;
}

export interface GatewayConfig {
	mode: "embedded" | "cluster";
	/** Moleculer namespace and Redis key prefix: clusters sharing NATS or Redis stay apart. */
	namespace: string;
	nodeId: string;
	transporter: string | null;
	databaseUrl: string;
	redisUrl: string | null;
	services: ServiceName[];
	host: string;
	port: number;
	grpcPort: number;
	/**
	 * A connection that does nothing for this long is closed (IDLE_CONNECTION_TIMEOUT_MS): one to PORT
	 * that sends nothing (WebSockets excepted: they ping), one to GRPC_PORT without calls.
	 */
	idleConnectionTimeoutMs: number;
	logLevel: LogLevel;
	dataDir: string;
	publicUrl: string | null;
	telegramApiRoot: string;
	/** Connections to the Bot API for sends (TELEGRAM_MAX_CONNECTIONS); control calls and long polls have pools of their own. */
	telegramMaxConnections: number;
	jwt: { secret: string; issuer: string; audience: string; accessTtlSeconds: number; refreshTtlSeconds: number };
	/** The first key encrypts; every key decrypts (rotation keeps old keys until re-encryption). */
	encryptionKeys: EncryptionKey[];
	admin: { username: string; password: string | null };
	trustProxy: string[];
	/** Requests per second for a principal without a limit of its own (API keys may set one). */
	rateLimitDefault: number;
	/** Live connections (sockets, WebSockets, gRPC streams) one principal may hold open on one node. */
	liveConnectionsPerPrincipal: number;
	/** The same for one user, its own logins and every API key it owns together (5 principals' worth by default). */
	liveConnectionsPerUser: number;
	/**
	 * Live connections one node holds at most, whoever holds them (socket.io sessions, signed in or
	 * not yet, WebSockets, gRPC streams): what its memory is sized for (docs/operations.md).
	 */
	liveConnectionsPerNode: number;
	/** Active (not revoked, not expired) API keys one user may hold: each is a rate-limit bucket and a connection allowance of its own. */
	apiKeysPerUser: number;
	/** Messages queued (not yet sent or failed) per chat and per bot before a send is refused with 429: the queue drains at Telegram's pace. */
	sendQueueLimits: { perChat: number; perBot: number };
	/** Subscriptions one socket.io or WebSocket connection may hold. */
	subscriptionsPerConnection: number;
	webhookAllowPrivate: boolean;
	/** Active webhooks one user may own, its API keys' included (WEBHOOKS_PER_USER_MAX): each is a delivery per event. */
	webhooksPerUserMax: number;
	/** Days a finished webhook delivery (and its attempt log) is kept; 0 keeps them for ever. */
	webhookDeliveryRetentionDays: number;
	/**
	 * Hours a received Telegram update is remembered for de-duplication (then removed): a redelivery
	 * within them is stored once, the same update_id after them is a new update.
	 */
	telegramUpdateRetentionHours: number;
	/** Seconds between two rounds of the reconciler that sets each bot's Telegram webhook as configured (services/bots/reconciler.ts). */
	telegramReconcileSeconds: number;
	/** Days a security event (failed login, lockout, refresh token reuse) is kept; 0 keeps them for ever. */
	securityEventRetentionDays: number;
	/** Days an event of the log is kept for replay; 0 (the default) keeps them for ever. */
	eventRetentionDays: number;
	/** Moleculer's metrics and GET /metrics (METRICS_ENABLED, default on). */
	metricsEnabled: boolean;
	metricsToken: string | null;
	tracing: TracingConfig;
	migrateOnStart: boolean;
	/** Warnings to log once the logger exists (generated dev secrets and the like). */
	warnings: string[];
}

/** Moleculer 0.14's span exporters that need no package beyond moleculer itself. */
export const TRACING_EXPORTERS = ["off", "console", "event", "zipkin"] as const;
export type TracingExporter = (typeof TRACING_EXPORTERS)[number];

export interface TracingConfig {
	exporter: TracingExporter;
	/** Zipkin's base URL (spans go to <endpoint>/api/v2/spans); Jaeger takes the same on its Zipkin port. */
	endpoint: string | null;
	/** Share of traces kept, 0 < rate <= 1. */
	sampleRate: number;
}

export class ConfigError extends Error {
	constructor(readonly problems: string[]) {
		super(`Invalid configuration:\n  - ${problems.join("\n  - ")}`);
		this.name = "ConfigError";
	}
}

type Env = Record<string, string | undefined>;

function nonEmpty(value: string | undefined): string | undefined {
	const trimmed = value?.trim();
	return trimmed ? trimmed : undefined;
}

/** Decimal digits only: Number() would also take "0x10", "1e3" and " 7 ". */
const DIGITS = /^\d+$/;

function parsePort(name: string, raw: string | undefined, fallback: number, problems: string[]): number {
	if (raw === undefined) return fallback;
	const port = DIGITS.test(raw) ? Number(raw) : Number.NaN;
	if (!Number.isInteger(port) || port < 0 || port > 65535) {
		problems.push(`${name} must be a port number (0-65535), got "${raw}"`);
		return fallback;
	}
	return port;
}

/** An integer setting of at least `min` (1 unless said). */
function parseInteger(name: string, raw: string | undefined, fallback: number, problems: string[], min = 1): number {
	if (raw === undefined) return fallback;
	const value = DIGITS.test(raw) ? Number(raw) : Number.NaN;
	if (!Number.isSafeInteger(value) || value < min) {
		problems.push(`${name} must be ${min === 0 ? "a whole number (0 or more)" : "a positive integer"}, got "${raw}"`);
		return fallback;
	}
	return value;
}

/**
 * Telegram keeps an undelivered update, and pushes it again, for up to 24 hours; after a week without
 * updates it picks the next update_id at random, which may be one stored before. The window lies
 * between: a redelivery is always found, an id from before a quiet week never is.
 */
export const TELEGRAM_UPDATE_RETENTION_HOURS = { min: 24, default: 72, max: 167 } as const;

function parseUpdateRetentionHours(raw: string | undefined, problems: string[]): number {
	const name = "TELEGRAM_UPDATE_RETENTION_HOURS";
	const { min, max } = TELEGRAM_UPDATE_RETENTION_HOURS;
	const hours = parseInteger(name, raw, TELEGRAM_UPDATE_RETENTION_HOURS.default, problems, 0);
	if (hours < min || hours > max) {
		problems.push(
			`${name} must be ${min}-${max} hours, got "${raw}": Telegram pushes an update again for up to 24 hours, ` +
				"and after a week without updates may reuse an old update_id",
		);
		return TELEGRAM_UPDATE_RETENTION_HOURS.default;
	}
	return hours;
}

/** At least a minute (a round costs one Telegram call per bot), at most a day. */
export const TELEGRAM_RECONCILE_SECONDS = { min: 60, default: 600, max: 86_400 } as const;

function parseReconcileSeconds(raw: string | undefined, problems: string[]): number {
	const name = "TELEGRAM_RECONCILE_SECONDS";
	const { min, max } = TELEGRAM_RECONCILE_SECONDS;
	const seconds = parseInteger(name, raw, TELEGRAM_RECONCILE_SECONDS.default, problems);
	if (seconds < min || seconds > max) {
		problems.push(`${name} must be ${min}-${max} seconds, got "${raw}": each round asks Telegram once per bot`);
		return TELEGRAM_RECONCILE_SECONDS.default;
	}
	return seconds;
}

/** The database a mysql:// URL names ("" when none). */
function databaseNameOf(raw: string): string {
	try {
		return decodeURIComponent(new URL(raw).pathname.replace(/^\/+/, "").replace(/\/+$/, ""));
	} catch {
		return "";
	}
}

/** Domains reserved for documentation and tests (RFC 2606, RFC 6761): never a real deployment's. */
function isPlaceholderHost(host: string): boolean {
	return /(^|\.)example\.(com|net|org)$|\.(example|invalid|test)$/i.test(host.replace(/\.$/, ""));
}

function isHttpUrl(raw: string): boolean {
	try {
		const url = new URL(raw);
		return (url.protocol === "http:" || url.protocol === "https:") && url.hostname !== "" && !/\s/.test(raw);
	} catch {
		return false;
	}
}

/** The first admin as login will look it up: usernames are lower case; the password as given, untrimmed. */
function parseAdmin(env: Env, problems: string[]): GatewayConfig["admin"] {
	const username = (nonEmpty(env.ADMIN_USERNAME) ?? "admin").toLowerCase();
	if (!/^[a-z0-9][a-z0-9_.-]{2,63}$/.test(username)) {
		problems.push("ADMIN_USERNAME must be 3-64 letters, digits, _, . or -, starting with a letter or digit");
	}
	const password = env.ADMIN_PASSWORD !== undefined && env.ADMIN_PASSWORD.trim() !== "" ? env.ADMIN_PASSWORD : null;
	if (password !== null && (password.length < 10 || password.length > 256)) problems.push("ADMIN_PASSWORD must be 10-256 characters (as for every password)");
	return { username, password };
}

function parseBoolean(name: string, raw: string | undefined, fallback: boolean, problems: string[]): boolean {
	if (raw === undefined) return fallback;
	if (/^(1|true|yes|on)$/i.test(raw)) return true;
	if (/^(0|false|no|off)$/i.test(raw)) return false;
	problems.push(`${name} must be true or false, got "${raw}"`);
	return fallback;
}

/** TRACING_EXPORTER, TRACING_ENDPOINT and TRACING_SAMPLE_RATE; off unless asked for. */
export function parseTracing(env: Env, problems: string[]): TracingConfig {
	const raw = (nonEmpty(env.TRACING_EXPORTER) ?? "off").toLowerCase();
	const endpoint = nonEmpty(env.TRACING_ENDPOINT)?.replace(/\/+$/, "") ?? null;
	let exporter: TracingExporter = "off";
	if ((TRACING_EXPORTERS as readonly string[]).includes(raw)) exporter = raw as TracingExporter;
	else if (raw === "jaeger" || raw === "datadog") {
		problems.push(
			`TRACING_EXPORTER=${raw} needs a package this build does not ship (${raw === "jaeger" ? "jaeger-client" : "dd-trace"}); ` +
				"use zipkin (Jaeger accepts Zipkin spans on its port 9411)",
		);
	} else problems.push(`TRACING_EXPORTER must be one of ${TRACING_EXPORTERS.join(", ")}, got "${raw}"`);
	if (endpoint && !isHttpUrl(endpoint)) problems.push("TRACING_ENDPOINT must be an http(s) URL");
	if (exporter === "zipkin" && !endpoint) problems.push("TRACING_ENDPOINT is required with TRACING_EXPORTER=zipkin (e.g. http://zipkin:9411)");
	const rateRaw = nonEmpty(env.TRACING_SAMPLE_RATE);
	const sampleRate = rateRaw === undefined ? 1 : Number(rateRaw);
	if (!(sampleRate > 0 && sampleRate <= 1)) problems.push(`TRACING_SAMPLE_RATE must be a number above 0 and at most 1, got "${rateRaw}"`);
	return { exporter, endpoint, sampleRate: sampleRate > 0 && sampleRate <= 1 ? sampleRate : 1 };
}

/** `TOKEN_ENCRYPTION_KEYS=k2:<base64 32 bytes>,k1:<base64 32 bytes>`: the first key is the active one. */
export function parseEncryptionKeys(raw: string, problems: string[]): EncryptionKey[] {
	const keys: EncryptionKey[] = [];
	for (const item of raw.split(",").map((s) => s.trim()).filter(Boolean)) {
		const sep = item.indexOf(":");
		const id = sep > 0 ? item.slice(0, sep) : "";
		const key = Buffer.from(item.slice(sep + 1), "base64");
		if (!/^[A-Za-z0-9_-]{1,32}$/.test(id)) {
			problems.push("TOKEN_ENCRYPTION_KEYS: each entry must be <id>:<base64 key> with an id of 1-32 letters, digits, _ or -");
		} else if (key.length !== 32) {
			problems.push(`TOKEN_ENCRYPTION_KEYS: key "${id}" must decode from base64 to 32 bytes, got ${key.length}`);
		} else if (keys.some((k) => k.id === id)) {
			problems.push(`TOKEN_ENCRYPTION_KEYS: key id "${id}" appears twice`);
		} else if (keys.some((k) => k.id.toLowerCase() === id.toLowerCase())) {
			// MySQL compares key ids without case: rotation would take rows sealed with "k1" for "K1"'s and skip them.
			problems.push(`TOKEN_ENCRYPTION_KEYS: key ids "${keys.find((k) => k.id.toLowerCase() === id.toLowerCase())!.id}" and "${id}" differ only in letter case`);
		} else {
			keys.push({ id, key });
		}
	}
	if (keys.length === 0 && problems.length === 0) problems.push("TOKEN_ENCRYPTION_KEYS holds no key");
	return keys;
}

export function formatEncryptionKeys(keys: EncryptionKey[]): string {
	return keys.map((k) => `${k.id}:${k.key.toString("base64")}`).join(",");
}

interface DevSecrets {
	jwt_secret: string;
	token_encryption_keys: string;
}

/**
 * Whether a SQLite file holds any table: its header's page count is past the first page (which an
 * empty database is), or its write-ahead log holds pages not yet copied back. Read from the header,
 * without opening the database (the configuration is read before anything is opened).
 */
function holdsTables(file: string): boolean {
	if (!existsSync(file) || statSync(file).size === 0) return false;
	const header = Buffer.alloc(100);
	const fd = openSync(file, "r");
	try {
		readSync(fd, header, 0, 100, 0);
	} finally {
		closeSync(fd);
	}
	// Not a SQLite file: something is there; the database's open will say what.
	if (header.toString("latin1", 0, 16) !== "SQLite format 3\0") return true;
	const wal = `${file}-wal`;
	return header.readUInt32BE(28) > 1 || (existsSync(wal) && statSync(wal).size > 0);
}

/**
 * Embedded mode only: secrets generated on first start and kept in DATA_DIR so tokens survive restarts.
 * `databaseFile`: the SQLite file the node will open, if any. One that already holds data was sealed
 * with the secrets of a dev-secrets.json that is gone (a restore that left it out, a file deleted):
 * new ones would start a node that cannot read a bot token or a webhook secret, saying ready.
 */
function loadOrCreateDevSecrets(dataDir: string, databaseFile: string | null, warnings: string[], problems: string[]): Partial<DevSecrets> {
	const file = join(dataDir, "dev-secrets.json");
	if (existsSync(file)) {
		// A file edited by hand must not start the gateway with an empty signing key (anyone could sign tokens).
		const broken = `${file} must hold "jwt_secret" and "token_encryption_keys" (remove it to generate new ones; tokens signed with the old secret stop working)`;
		let parsed: unknown;
		try {
			parsed = JSON.parse(readFileSync(file, "utf8"));
		} catch {
			problems.push(`${broken}: it is not valid JSON`);
			return {};
		}
		const secrets = (parsed ?? {}) as Partial<Record<keyof DevSecrets, unknown>>;
		if (typeof secrets.jwt_secret !== "string" || typeof secrets.token_encryption_keys !== "string") {
			problems.push(broken);
			return {};
		}
		return { jwt_secret: secrets.jwt_secret, token_encryption_keys: secrets.token_encryption_keys };
	}
	if (databaseFile !== null && holdsTables(databaseFile)) {
		problems.push(
			`DATA_DIR: ${file} is missing, but the database ${databaseFile} exists: its bot tokens and webhook secrets were sealed with the keys that file held. Put it back (it belongs with every backup of the database), or set JWT_SECRET and TOKEN_ENCRYPTION_KEYS to its values; new secrets would make them unreadable`,
		);
		return {};
	}
	const secrets: DevSecrets = {
		jwt_secret: randomBytes(48).toString("base64url"),
		token_encryption_keys: formatEncryptionKeys([{ id: "dev1", key: randomBytes(32) }]),
	};
	try {
		mkdirSync(dataDir, { recursive: true, mode: 0o700 });
		writeFileSync(file, JSON.stringify(secrets, null, 2), { mode: 0o600 });
		chmodSync(file, 0o600);
	} catch (err) {
		problems.push(`DATA_DIR: cannot keep the gateway's files in ${dataDir} (${(err as Error).message})`);
		return {};
	}
	warnings.push(`Generated development secrets in ${file}. Set JWT_SECRET and TOKEN_ENCRYPTION_KEYS for production.`);
	return secrets;
}

/** DATABASE_URL, or the embedded default: gateway.sqlite in DATA_DIR. */
function databaseUrlOf(env: Env): string {
	return nonEmpty(env.DATABASE_URL) ?? defaultDatabaseUrl(resolve(nonEmpty(env.DATA_DIR) ?? "./data"));
}

/** The embedded default database: gateway.sqlite in DATA_DIR. */
export function defaultDatabaseUrl(dataDir: string): string {
	return `sqlite:${join(dataDir, "gateway.sqlite")}`;
}

/** The SQLite file a sqlite: URL names (read as missingSqliteFile reads it); null for another database or :memory:. */
export function sqliteFileOf(url: string): string | null {
	if (!url.startsWith("sqlite:")) return null;
	const file = url.slice("sqlite:".length).replace(/^\/\//, "").trim();
	return file === "" || file === ":memory:" ? null : resolve(file);
}

/**
 * The SQLite file this environment names when there is none yet (null: it exists, or the database
 * is MySQL or in memory). Read before loadConfig, which makes DATA_DIR and its secrets.
 */
export function missingSqliteFile(env: Env = process.env): string | null {
	const file = sqliteFileOf(databaseUrlOf(env));
	return file === null || existsSync(file) ? null : file;
}

export function loadConfig(env: Env = process.env): GatewayConfig {
	const problems: string[] = [];
	const warnings: string[] = [];
	const transporter = nonEmpty(env.TRANSPORTER) ?? null;
	const mode = transporter ? "cluster" : "embedded";
	const dataDir = resolve(nonEmpty(env.DATA_DIR) ?? "./data");

	const listed = (nonEmpty(env.SERVICES) ?? ALL_SERVICES.join(","))
		.split(",")
		.map((s) => s.trim())
		.filter(Boolean);
	for (const name of listed) {
		if (!(ALL_SERVICES as readonly string[]).includes(name)) {
			problems.push(`SERVICES: unknown service "${name}" (known: ${ALL_SERVICES.join(", ")})`);
		}
	}
	const doubled = [...new Set(listed.filter((name, i) => listed.indexOf(name) !== i))];
	if (doubled.length > 0) problems.push(`SERVICES: ${doubled.join(", ")} listed more than once (a service runs once per node)`);
	if (nonEmpty(env.SERVICES) !== undefined && listed.length === 0) problems.push(`SERVICES: "${env.SERVICES}" names no service (leave it unset for all nine)`);
	// Started in ALL_SERVICES's order whatever the list's: api makes the HTTP server realtime attaches to.
	const services = ALL_SERVICES.filter((name) => listed.includes(name));
	if (services.includes("realtime") && !services.includes("api")) {
		problems.push("SERVICES: realtime serves sockets on the api service's HTTP server, so it needs api on the same node");
	}
	if (mode === "embedded") {
		// Without a transporter no other node can run what this process leaves out: its routes would answer 503 for ever.
		const missing = EMBEDDED_CORE.filter((name) => !services.includes(name));
		if (missing.length > 0) {
			problems.push(
				`SERVICES: without TRANSPORTER this process is the whole gateway (embedded mode), and ${missing.join(", ")} would run nowhere: ` +
					"set TRANSPORTER to make it one node of a cluster, or leave SERVICES unset (api, realtime and grpc may be left out)",
			);
		}
	}

	const databaseUrl = databaseUrlOf(env);
	if (!/^(sqlite:|mysql:\/\/|mariadb:\/\/)/.test(databaseUrl)) {
		problems.push(`DATABASE_URL must start with mysql://, mariadb:// or sqlite:, got "${databaseUrl.split(":")[0]}:..."`);
	} else if (/^sqlite:(\/\/)?\s*$/.test(databaseUrl)) {
		// "sqlite:$UNSET" would otherwise keep everything in memory and lose it on exit.
		problems.push("DATABASE_URL: sqlite: needs a file path (sqlite::memory: for a database that is gone when the process exits)");
	}
	if (/^(mysql|mariadb):\/\//.test(databaseUrl) && databaseNameOf(databaseUrl) === "") {
		// "mysql://root:ab/cd@host/db" reads as host "root:ab", path "/cd@host/db": the password's "/" is the cause.
		const unencoded = /^[a-z]+:\/\/[^@]*[/?#][^@]*@/.test(databaseUrl);
		problems.push(
			unencoded
				? "DATABASE_URL cannot be read: its user or password holds a character that must be percent-encoded there (/ ? # @ : as %2F %3F %23 %40 %3A; encodeURIComponent does it)"
				: "DATABASE_URL must name the database: mysql://user:password@host:3306/<database>",
		);
	}
	const redisUrl = nonEmpty(env.REDIS_URL) ?? null;
	if (redisUrl && !/^rediss?:\/\//.test(redisUrl)) problems.push("REDIS_URL must start with redis:// or rediss://");
	if (transporter && !/^nats:\/\//.test(transporter)) problems.push("TRANSPORTER must be a nats:// URL");

	if (mode === "cluster") {
		// Several nodes share state only through these; a node that guessed would split the cluster.
		if (databaseUrl.startsWith("sqlite:")) problems.push("DATABASE_URL: cluster mode needs a mysql:// database shared by every node");
		if (!redisUrl) problems.push("REDIS_URL is required in cluster mode (rate limits, locks and caches are shared through Redis)");
	}

	let jwtSecret = nonEmpty(env.JWT_SECRET);
	let keysRaw = nonEmpty(env.TOKEN_ENCRYPTION_KEYS);
	if (mode === "cluster") {
		if (!jwtSecret) problems.push("JWT_SECRET is required in cluster mode (at least 32 characters, the same on every node)");
		if (!keysRaw) problems.push("TOKEN_ENCRYPTION_KEYS is required in cluster mode (id:base64-32-byte-key, the same on every node)");
	} else if (!jwtSecret || !keysRaw) {
		const dev = loadOrCreateDevSecrets(dataDir, sqliteFileOf(databaseUrl), warnings, problems);
		jwtSecret ??= dev.jwt_secret?.trim() || undefined;
		keysRaw ??= dev.token_encryption_keys?.trim() || undefined;
	}
	if (mode === "embedded" && problems.length === 0 && (!jwtSecret || !keysRaw)) problems.push("JWT_SECRET and TOKEN_ENCRYPTION_KEYS: no value, and none in dev-secrets.json");
	if (jwtSecret !== undefined && jwtSecret.length < 32) problems.push("JWT_SECRET must be at least 32 characters");
	const encryptionKeys = keysRaw ? parseEncryptionKeys(keysRaw, problems) : [];

	const publicUrl = nonEmpty(env.PUBLIC_URL) ?? null;
	if (publicUrl && !isHttpUrl(publicUrl)) problems.push("PUBLIC_URL must be an http(s) URL");
	else if (publicUrl && /[?#]/.test(publicUrl)) problems.push("PUBLIC_URL must not have a query or fragment: each bot's webhook path is appended to it");
	else if (publicUrl && isPlaceholderHost(new URL(publicUrl).hostname)) {
		// The manifests' placeholder: left unedited, every bot's webhook would point at it.
		problems.push(`PUBLIC_URL names ${new URL(publicUrl).hostname}, a domain reserved for examples: set it to the base URL Telegram can reach`);
	}
	const telegramApiRoot = (nonEmpty(env.TELEGRAM_API_ROOT) ?? "https://api.telegram.org").replace(/\/+$/, "");
	if (!isHttpUrl(telegramApiRoot)) problems.push("TELEGRAM_API_ROOT must be an http(s) URL");

	const admin = parseAdmin(env, problems);
	const trustProxy = (nonEmpty(env.TRUST_PROXY) ?? "").split(",").map((s) => s.trim()).filter(Boolean);
	for (const entry of trustProxy) {
		if (isIP(entry) === 0) problems.push(`TRUST_PROXY: "${entry}" is not an IP address (list each proxy's address; ranges are not supported)`);
	}
	const metricsToken = nonEmpty(env.METRICS_TOKEN) ?? null;
	if (metricsToken !== null && !/^[\x21-\x7e]+$/.test(metricsToken)) problems.push("METRICS_TOKEN must be printable ASCII without spaces (it is sent as a bearer token)");

	const logLevel = (nonEmpty(env.LOG_LEVEL) ?? "info") as LogLevel;
	if (!LOG_LEVELS.includes(logLevel)) problems.push(`LOG_LEVEL must be one of ${LOG_LEVELS.join(", ")}`);

	const namespace = nonEmpty(env.NAMESPACE) ?? "tgw";
	if (!/^[A-Za-z0-9_-]{1,32}$/.test(namespace)) problems.push("NAMESPACE must be 1-32 letters, digits, _ or -");

	const port = parsePort("PORT", nonEmpty(env.PORT), 3000, problems);
	const grpcPort = parsePort("GRPC_PORT", nonEmpty(env.GRPC_PORT), 50051, problems);
	if (port === grpcPort && port !== 0 && services.includes("grpc")) {
		// Every node listens on PORT: the REST API on api nodes, /health, /ready and /metrics on the others.
		problems.push(`PORT and GRPC_PORT are both ${port}: the grpc service needs a port of its own (PORT serves ${services.includes("api") ? "the REST API" : "/health, /ready and /metrics"} on this node)`);
	}

	const liveConnectionsPerPrincipal = parseInteger("LIVE_CONNECTIONS_PER_PRINCIPAL", nonEmpty(env.LIVE_CONNECTIONS_PER_PRINCIPAL), 1_000, problems);
	const config: GatewayConfig = {
		mode,
		namespace,
		nodeId: nonEmpty(env.NODE_ID) ?? `${hostname()}-${process.pid}`,
		transporter,
		databaseUrl,
		redisUrl,
		services: services as ServiceName[],
		host: nonEmpty(env.HOST) ?? (mode === "cluster" ? "0.0.0.0" : "127.0.0.1"),
		port,
		grpcPort,
		idleConnectionTimeoutMs: parseInteger("IDLE_CONNECTION_TIMEOUT_MS", nonEmpty(env.IDLE_CONNECTION_TIMEOUT_MS), 60_000, problems),
		logLevel,
		dataDir,
		publicUrl: publicUrl?.replace(/\/+$/, "") ?? null,
		telegramApiRoot,
		telegramMaxConnections: parseInteger("TELEGRAM_MAX_CONNECTIONS", nonEmpty(env.TELEGRAM_MAX_CONNECTIONS), 128, problems),
		jwt: {
			// Never empty past the checks above: loadConfig throws first.
			secret: jwtSecret ?? "",
			issuer: nonEmpty(env.JWT_ISSUER) ?? "telegram-bot-gateway",
			audience: nonEmpty(env.JWT_AUDIENCE) ?? "telegram-bot-gateway",
			accessTtlSeconds: parseInteger("JWT_ACCESS_TTL", nonEmpty(env.JWT_ACCESS_TTL), 15 * 60, problems),
			refreshTtlSeconds: parseInteger("JWT_REFRESH_TTL", nonEmpty(env.JWT_REFRESH_TTL), 7 * 24 * 3600, problems),
		},
		encryptionKeys,
		admin,
		rateLimitDefault: parseInteger("RATE_LIMIT_DEFAULT", nonEmpty(env.RATE_LIMIT_DEFAULT), 100, problems),
		liveConnectionsPerPrincipal,
		liveConnectionsPerUser: parseInteger("LIVE_CONNECTIONS_PER_USER", nonEmpty(env.LIVE_CONNECTIONS_PER_USER), 5 * liveConnectionsPerPrincipal, problems),
		liveConnectionsPerNode: parseInteger("LIVE_CONNECTIONS_PER_NODE", nonEmpty(env.LIVE_CONNECTIONS_PER_NODE), 20_000, problems),
		apiKeysPerUser: parseInteger("API_KEYS_PER_USER", nonEmpty(env.API_KEYS_PER_USER), 100, problems),
		sendQueueLimits: {
			// 100 s of Telegram's one message per second in a private chat (5 minutes at a group's 20 a
			// minute); 100 s of its 30 per second per bot.
			perChat: parseInteger("SEND_QUEUE_PER_CHAT", nonEmpty(env.SEND_QUEUE_PER_CHAT), 100, problems),
			perBot: parseInteger("SEND_QUEUE_PER_BOT", nonEmpty(env.SEND_QUEUE_PER_BOT), 3_000, problems),
		},
		subscriptionsPerConnection: parseInteger("SUBSCRIPTIONS_PER_CONNECTION", nonEmpty(env.SUBSCRIPTIONS_PER_CONNECTION), 200, problems),
		trustProxy,
		webhookAllowPrivate: parseBoolean("WEBHOOK_ALLOW_PRIVATE", nonEmpty(env.WEBHOOK_ALLOW_PRIVATE), false, problems),
		webhooksPerUserMax: parseInteger("WEBHOOKS_PER_USER_MAX", nonEmpty(env.WEBHOOKS_PER_USER_MAX), 100, problems),
		webhookDeliveryRetentionDays: parseInteger("WEBHOOK_DELIVERY_RETENTION_DAYS", nonEmpty(env.WEBHOOK_DELIVERY_RETENTION_DAYS), 30, problems, 0),
		telegramUpdateRetentionHours: parseUpdateRetentionHours(nonEmpty(env.TELEGRAM_UPDATE_RETENTION_HOURS), problems),
		telegramReconcileSeconds: parseReconcileSeconds(nonEmpty(env.TELEGRAM_RECONCILE_SECONDS), problems),
		securityEventRetentionDays: parseInteger("SECURITY_EVENT_RETENTION_DAYS", nonEmpty(env.SECURITY_EVENT_RETENTION_DAYS), 90, problems, 0),
		eventRetentionDays: parseInteger("EVENT_RETENTION_DAYS", nonEmpty(env.EVENT_RETENTION_DAYS), 0, problems, 0),
		metricsEnabled: parseBoolean("METRICS_ENABLED", nonEmpty(env.METRICS_ENABLED), true, problems),
		metricsToken,
		tracing: parseTracing(env, problems),
		migrateOnStart: parseBoolean("MIGRATE_ON_START", nonEmpty(env.MIGRATE_ON_START), true, problems),
		warnings,
	};
	if (config.jwt.accessTtlSeconds > config.jwt.refreshTtlSeconds) {
		warnings.push(
			`JWT_ACCESS_TTL (${config.jwt.accessTtlSeconds} s) is longer than JWT_REFRESH_TTL (${config.jwt.refreshTtlSeconds} s): an access token outlives the refresh token of its login, which a client needs to log out`,
		);
	}
	if (problems.length > 0) throw new ConfigError(problems);
	// An open GET /metrics is warned about by what serves it (lib/metrics.ts openMetricsWarning): a REPL node serves none.
	return config;
}

export function runsService(config: GatewayConfig, name: ServiceName): boolean {
	return config.services.includes(name);
}
