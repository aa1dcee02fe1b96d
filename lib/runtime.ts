/**
 * What a node holds besides the broker: its configuration, the database and the shared state store
 * (in process when embedded, Redis in cluster mode). The process entry (or a test) opens it, hands it
 * to every broker it creates, and closes it after the brokers have stopped.
 */
import type { ServiceBroker } from "moleculer";
import { ConfigError, defaultDatabaseUrl, type GatewayConfig } from "./config";
import { openDatabase, type Database } from "./db/connection";
import { Cursors } from "./paging";
import { createSharedState, type SharedState } from "./state";
import { TelegramClient } from "./telegram/client";

export interface Runtime {
	config: GatewayConfig;
	db: Database;
	state: SharedState;
	telegram: TelegramClient;
	/** Signs and reads the lists' paging cursors (lib/paging.ts). */
	cursors: Cursors;
	close(): Promise<void>;
}

/**
 * Where a store's URL points, for an operator's message: host:port (with the driver's default
 * port) or a SQLite path; never the credentials in it.
 */
export function storeAddress(url: string): string {
	if (url.startsWith("sqlite:")) return url;
	try {
		const parsed = new URL(url);
		const defaultPort = parsed.protocol.startsWith("redis") ? 6379 : 3306;
		return `${parsed.hostname}:${parsed.port || defaultPort}`;
	} catch {
		return "(an unreadable URL)";
	}
}

/** A store the node cannot open at start: the message names its variable and address. */
export class StoreUnreachableError extends Error {
	constructor(variable: "DATABASE_URL" | "DATA_DIR" | "REDIS_URL", url: string, cause: unknown) {
		const what = variable === "REDIS_URL" ? "Redis" : "the database";
		super(`Cannot reach ${what} at ${storeAddress(url)} (${variable}): ${(cause as Error)?.message ?? String(cause)}`);
		this.name = "StoreUnreachableError";
	}
}

export async function openRuntime(config: GatewayConfig): Promise<Runtime> {
	let db: Database;
	try {
		db = await openDatabase(config.databaseUrl);
	} catch (err) {
		// The embedded default is DATA_DIR's file: name the variable the operator set (or can set).
		const fromDataDir = config.databaseUrl === defaultDatabaseUrl(config.dataDir);
		throw new StoreUnreachableError(fromDataDir ? "DATA_DIR" : "DATABASE_URL", config.databaseUrl, err);
	}
	let state: SharedState;
	try {
		state = await createSharedState(config.redisUrl, config.namespace);
	} catch (err) {
		await db.close();
		throw config.redisUrl ? new StoreUnreachableError("REDIS_URL", config.redisUrl, err) : err;
	}
	const telegram = new TelegramClient(config.telegramApiRoot, { connections: config.telegramMaxConnections });
	let closed = false;
	return {
		config,
		db,
		state,
		telegram,
		cursors: new Cursors(config.jwt.secret),
		async close() {
			if (closed) return;
			closed = true;
			await Promise.allSettled([state.close(), db.close(), telegram.close()]);
		},
	};
}

const runtimes = new WeakMap<ServiceBroker, Runtime>();

export function attachRuntime(broker: ServiceBroker, runtime: Runtime): void {
	runtimes.set(broker, runtime);
}

export function runtimeOf(broker: ServiceBroker): Runtime {
	const runtime = runtimes.get(broker);
	if (!runtime) throw new Error("This broker was not created by createBrokerOptions(runtime): no runtime attached");
	return runtime;
}

/**
 * For a process entry: the configuration and the runtime it opens, or a one-line reason on stderr
 * and exit 1 (a missing secret or an unreachable store is an operator's mistake, not a stack trace).
 */
export async function openRuntimeOrExit(loadConfig: () => GatewayConfig): Promise<Runtime> {
	let config: GatewayConfig;
	try {
		config = loadConfig();
	} catch (err) {
		if (!(err instanceof ConfigError)) throw err;
		console.error(err.message);
		process.exit(1);
	}
	try {
		return await openRuntime(config);
	} catch (err) {
		console.error((err as Error).message);
		process.exit(1);
	}
}

const START_HINTS: Record<string, string> = {
	EADDRINUSE: "another process listens there: choose another PORT / GRPC_PORT, or stop it",
	EADDRNOTAVAIL: "HOST is not an address of this machine",
	ENOTFOUND: "HOST is not a name this machine can resolve",
	EACCES: "ports below 1024 need privileges: choose another PORT / GRPC_PORT",
};

/**
 * What a process entry prints when the node cannot start: an operating-system refusal (a port in
 * use, an address this machine does not have) in one line with what to change; anything else, a
 * bug, with its stack.
 */
export function startFailure(err: unknown): string {
	// Duck-typed: an error of another realm (a test's VM context) is no instanceof Error here.
	const system = (typeof err === "object" && err !== null ? err : {}) as Partial<NodeJS.ErrnoException>;
	if (typeof system.message === "string" && typeof system.syscall === "string" && typeof system.code === "string") {
		const hint = START_HINTS[system.code];
		return hint ? `${system.message} (${hint})` : system.message;
	}
	return typeof system.message === "string" ? (system.stack ?? system.message) : String(err);
}
