/**
 * The process entry: read the environment, open the database and shared state, wait unready while
 * the database holds migrations newer than this build, migrate (or, with MIGRATE_ON_START=false,
 * wait unready until the schema is migrated), start the services this node
 * runs (SERVICES), and shut down cleanly on SIGTERM/SIGINT. Containers run this file with node
 * directly (npm would not forward SIGTERM).
 */
import { join } from "node:path";
import { ServiceBroker } from "moleculer";
import { createBrokerOptions } from "../moleculer.config";
import { loadConfig, sqliteFileOf, type GatewayConfig } from "../lib/config";
import { openMetricsWarning } from "../lib/metrics";
import { lockDatabaseFile } from "../lib/data-dir-lock";
import { claimNodeId } from "../lib/node-id-claim";
import { migrateUp, pendingMigrations, SCHEMA_CHECK_EVERY_MS, unknownMigrations, waitUntilMigrated, waitUntilNotAhead } from "../lib/db/migrator";
import { startOpsServer, type OpsServer } from "../lib/ops-server";
import { openRuntimeOrExit, startFailure, type Runtime } from "../lib/runtime";
import { warnAtMostEvery } from "../lib/throttled-warning";

const SERVICES_DIR = join(__dirname, "..", "services");
const SHUTDOWN_TIMEOUT_MS = 30_000;
/** libuv's pool: SQLite, 2 argon2 checks, 2 argon2 hashes and 2 system host lookups at most. */
const RECOMMENDED_THREAD_POOL = 8;
/** A signal again within this long is the same one delivered twice (npm passing on the terminal's Ctrl-C). */
const DUPLICATE_SIGNAL_MS = 1_000;

type Drainable = { name: string; drain?: () => Promise<void> };

/** What this process holds while it runs (its NODE_ID in a cluster, its database file embedded), given back when it stops. */
const held: Array<() => unknown> = [];
const releaseHeld = () => Promise.allSettled(held.splice(0).map(async (release) => release()));

export function loadServices(broker: ServiceBroker, config: GatewayConfig): void {
	// config.services is in ALL_SERVICES order, whatever SERVICES lists: api is created before realtime, which attaches to its server.
	for (const name of config.services) broker.loadService(join(SERVICES_DIR, `${name}.service`));
}

/** Moleculer's local-bus event (missing from its typings): the transporter connected. */
function onTransporterConnected(broker: ServiceBroker, listener: () => void): void {
	(broker as unknown as { localBus: { once(event: string, listener: () => void): void } }).localBus.once("$transporter.connected", listener);
}

function publicAddress(config: GatewayConfig): string {
	const host = config.host === "0.0.0.0" || config.host === "::" ? "127.0.0.1" : config.host;
	return `http://${host}:${config.port}`;
}

/** Drains and stops the node, then exits with `exitCode` (1 if it cannot stop cleanly). */
export async function shutdown(broker: ServiceBroker, runtime: Runtime, ops: OpsServer | null, signal: string, exitCode = 0): Promise<void> {
	const log = broker.getLogger("gateway");
	log.info(`${signal} received: draining connections, then stopping`);
	const deadline = setTimeout(() => {
		log.error(`Shutdown took longer than ${SHUTDOWN_TIMEOUT_MS} ms; exiting anyway`);
		process.exit(1);
	}, SHUTDOWN_TIMEOUT_MS);
	deadline.unref();
	try {
		// Entry points stop taking work first (sockets and streams before the HTTP server they ride on).
		for (const service of [...broker.services].reverse() as unknown as Drainable[]) {
			if (typeof service.drain === "function") await service.drain();
		}
		await ops?.close();
		await broker.stop();
		await releaseHeld();
		await runtime.close();
		// The broker's logger is closed by now; write directly and exit once the line is flushed.
		process.stdout.write(`[${new Date().toISOString()}] Gateway node ${broker.nodeID} stopped cleanly\n`, () => process.exit(exitCode));
	} catch (err) {
		log.error("Shutdown failed:", err);
		process.exit(1);
	}
}

async function main(): Promise<void> {
	const runtime = await openRuntimeOrExit(() => loadConfig());
	const { config } = runtime;

	const broker = new ServiceBroker(createBrokerOptions(runtime));
	const log = broker.getLogger("gateway");
	for (const warning of config.warnings) log.warn(warning);

	let ops: OpsServer | null = null;
	// Where startup is, for a signal that comes before the node is up: before its services load it
	// exits at once (a migration under way finishes first: a half-applied one would wait for the
	// next start); while they start, it waits for them to finish starting, then drains as usual.
	let startup: { phase: "waiting" } | { phase: "migrating" | "starting"; done: Promise<unknown> } | { phase: "up" } = { phase: "waiting" };
	// Whether the transporter has connected: broker.start() waits for it for as long as it is away.
	let joined = !config.transporter;
	let stoppingSince: number | null = null;
	const closeBeforeStart = () =>
		Promise.allSettled([ops?.close(), releaseHeld()])
			.then(() => runtime.close())
			.then(() => process.exit(0));
	const onSignal = (signal: NodeJS.Signals) => {
		if (stoppingSince !== null) {
			// Ctrl-C under `npm start` reaches node twice at once (the terminal signals the whole
			// process group, and npm passes its own on): that is one Ctrl-C, not two.
			if (Date.now() - stoppingSince < DUPLICATE_SIGNAL_MS) return;
			// A second signal (Ctrl-C twice): the drain is not waited for.
			log.warn(`${signal} again while draining: exiting now`);
			process.exit(1);
		}
		stoppingSince = Date.now();
		const current = startup;
		if (current.phase === "waiting") {
			log.info(`${signal} received before the services started: exiting`);
			void closeBeforeStart();
		} else if (current.phase === "up" || (current.phase === "starting" && !joined)) {
			// Still joining (NATS away), the services have not started: waiting for them could be for ever.
			void shutdown(broker, runtime, ops, signal);
		} else {
			log.info(`${signal} received while ${current.phase === "migrating" ? "migrating" : "the services start"}: stopping once that is done`);
			void current.done.then(
				() => (current.phase === "starting" ? shutdown(broker, runtime, ops, signal) : closeBeforeStart()),
				() => undefined, // main() reports the failure and exits 1
			);
		}
	};
	// SIGHUP too: a closed terminal (or an operator expecting a reload) stopped the node undrained.
	for (const signal of ["SIGTERM", "SIGINT", "SIGHUP"] as const) process.on(signal, () => onSignal(signal));

	if (config.transporter) {
		// Before the broker joins: a second node with this id would make Moleculer stop the first one.
		const claim = await claimNodeId(runtime.state, config.nodeId, {
			onWaiting: (holder) => log.warn(`NODE_ID ${config.nodeId} is held by ${holder?.split("|")[0] ?? "another process"}: waiting for it (a previous run of this node that stopped without giving it back lets go within 15 s)`),
		});
		held.push(() => claim.release());
	} else {
		// Embedded: the node is alone with its database; a second one on it would poll and pace apart.
		const file = sqliteFileOf(config.databaseUrl);
		if (file) {
			const lock = await lockDatabaseFile(file, { onWaiting: (holder) => log.warn(`Another gateway (${holder}) runs on ${file}: waiting up to 10 s for it to stop`) });
			held.push(() => lock.release());
			// However the process ends (a start that fails exits at once): the file is not left behind.
			process.once("exit", () => lock.release());
		}
	}
	if ((await unknownMigrations(runtime.db)).length > 0) {
		// A newer build migrated the database (an old node restarting during a rollout, or the code
		// rolled back): this code may not work on that schema (0010 changed the key ingest files chats
		// under), so it waits, alive and unready, until a newer build replaces it or the migrations go.
		ops = await startOpsServer(broker, runtime, "schema_ahead");
		await waitUntilNotAhead(runtime.db, {
			onAhead: (unknown) =>
				log.error(
					`The database has migrations this build does not know (${unknown.join(", ")}): it was migrated by a newer build. Not ready until they are gone: deploy the newer build, or revert them with the newer build's \`npm run migrate -- down --to ${[...unknown].sort()[0]}\` (checking every ${SCHEMA_CHECK_EVERY_MS / 1000} s)`,
				),
			onError: (err) => warnAtMostEvery(log, "schema-check", `Could not check the database's migrations: ${(err as Error).message}`),
		});
		log.info("The database has no migrations newer than this build: starting");
	}
	if (config.migrateOnStart) {
		// Probes are answered while the migrations run (or wait for another node's): /health 200, /ready 503.
		if (ops) ops.setPhase("migrating");
		else ops = await startOpsServer(broker, runtime, "migrating");
		const migrating = migrateUp(runtime.db, undefined, (holder) => log.info(`Waiting for ${holder} (another node migrates this database; up to 120 s)`));
		startup = { phase: "migrating", done: migrating };
		const applied = await migrating;
		startup = { phase: "waiting" };
		if (stoppingSince !== null) return;
		if (applied.length > 0) log.info(`Applied migrations: ${applied.map((m) => m.name).join(", ")}`);
	} else if ((await pendingMigrations(runtime.db)).length > 0) {
		// The migration job may be starting beside this node (one rollout): wait for it, alive and unready,
		// rather than serve on a schema without the build's columns, or exit and crash-loop meanwhile.
		if (ops) ops.setPhase("schema_behind");
		else ops = await startOpsServer(broker, runtime, "schema_behind");
		await waitUntilMigrated(runtime.db, {
			onBehind: (pending) =>
				log.warn(`The database schema is behind this build (pending: ${pending.join(", ")}) and MIGRATE_ON_START=false: not ready until \`npm run migrate -- up\` has applied them (checking every ${SCHEMA_CHECK_EVERY_MS / 1000} s)`),
			onError: (err) => warnAtMostEvery(log, "schema-check", `Could not check the database's migrations: ${(err as Error).message}`),
		});
		log.info("The database schema is up to date: starting");
	}

	if (stoppingSince !== null) return;
	loadServices(broker, config);

	const api = config.services.includes("api");
	if (config.transporter) {
		// broker.start() waits for the transporter (NATS) for as long as it is away: the node is alive
		// meanwhile, and not ready, whatever its role (an api node had nothing on its port).
		if (ops) ops.setPhase("joining");
		else ops = await startOpsServer(broker, runtime, "joining");
		if (api) {
			// The api service listens on the same port once the services start, right after the
			// transporter connects: the listener makes way for it then (server.close frees the port at once).
			const joining = ops;
			onTransporterConnected(broker, () => {
				if (ops === joining) ops = null;
				void joining.close();
			});
		}
	} else if (api && ops) {
		// The api service listens on the same port: the migration-time listener makes way for it.
		await ops.close();
		ops = null;
	}
	onTransporterConnected(broker, () => (joined = true));
	const starting = broker.start();
	startup = { phase: "starting", done: starting };
	await starting;
	startup = { phase: "up" };
	if (stoppingSince !== null) return;
	// Nodes without the REST gateway still answer /health, /ready and /metrics for their orchestrator.
	if (!api) {
		if (ops) ops.setPhase("serving");
		else ops = await startOpsServer(broker, runtime);
		const warning = openMetricsWarning(config);
		if (warning) log.warn(warning);
	}
	const pool = Number(process.env.UV_THREADPOOL_SIZE ?? 4);
	if (!(pool >= RECOMMENDED_THREAD_POOL)) {
		log.warn(`UV_THREADPOOL_SIZE is ${process.env.UV_THREADPOOL_SIZE ?? "unset (4)"}: set it to ${RECOMMENDED_THREAD_POOL} or more before node starts, so SQLite keeps threads while argon2 and host lookups are busy (docs/operations.md)`);
	}
	const where = api ? ` at ${publicAddress(config)}` : ` (probes at ${publicAddress(config)}/health and /ready)`;
	log.info(`Gateway node ${config.nodeId} ready${where} (${config.mode} mode; services: ${config.services.join(", ")})`);
}

if (require.main === module) {
	main().catch((err: unknown) => {
		console.error(`Gateway failed to start: ${startFailure(err)}`);
		process.exit(1);
	});
}
