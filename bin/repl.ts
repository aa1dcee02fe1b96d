/**
 * The operator console: `npm run repl`. Moleculer's REPL (moleculer-repl) with the gateway's own
 * commands (lib/repl/): users, apikeys, grants, bots, webhooks, deliveries, stats.
 *
 * - Cluster mode (TRANSPORTER set): the REPL is a node of its own that joins the cluster over NATS
 *   and runs no service (or the SERVICES given); every command is an action call to the nodes that
 *   run the services. It needs the same environment as the other nodes.
 * - Embedded mode: the process is the whole embedded gateway (every service, as `npm start`), with
 *   the REPL on its stdin. Do not run it next to `npm start` on the same DATA_DIR and PORT.
 *
 * Logs default to warn (LOG_LEVEL overrides) so the console stays readable.
 */
import { hostname } from "node:os";
import type { REPLServer } from "node:repl";
import { ServiceBroker } from "moleculer";
import { createBrokerOptions } from "../moleculer.config";
import { loadConfig, type GatewayConfig } from "../lib/config";
import { migrateUp } from "../lib/db/migrator";
import { exitCodeAtEndOfInput, replCommands, whenIdle } from "../lib/repl";
import { maskSecrets, redactHistory } from "../lib/repl/secrets";
import { openRuntimeOrExit, startFailure } from "../lib/runtime";
import { loadServices, shutdown } from "./gateway";

const DISCOVERY_WAIT_MS = 5_000;

function replConfig(env: NodeJS.ProcessEnv): GatewayConfig {
	const config = loadConfig({ ...env, LOG_LEVEL: env.LOG_LEVEL ?? "warn", NODE_ID: env.NODE_ID ?? `repl-${hostname()}-${process.pid}` });
	// loadConfig reads an unset SERVICES as "all nine"; a cluster's REPL node runs none unless told.
	if (config.mode === "cluster" && !env.SERVICES?.trim()) config.services = [];
	return config;
}

async function main(): Promise<void> {
	const runtime = await openRuntimeOrExit(() => replConfig(process.env));
	const { config } = runtime;
	// Read once above; from here on the REPL's `env` command shows them masked.
	maskSecrets(process.env);

	const broker = new ServiceBroker(
		createBrokerOptions(runtime, {
			metadata: { services: config.services, repl: true },
			replDelimiter: "tgw $",
			replCommands: replCommands(),
			// moleculer-repl's `exit` command stops the broker and exits: close the database with it.
			stopped: () => runtime.close(),
		}),
	);
	for (const warning of config.warnings) broker.logger.warn(warning);

	if (config.services.length > 0 && config.migrateOnStart) await migrateUp(runtime.db);
	loadServices(broker, config);
	let stopping = false;
	for (const signal of ["SIGTERM", "SIGINT"] as const) {
		process.on(signal, () => {
			if (stopping) return;
			stopping = true;
			void shutdown(broker, runtime, null, signal);
		});
	}

	// moleculer-repl's `exit` command and the end of stdin may both stop the broker: stop it once.
	const stopBroker = broker.stop.bind(broker);
	let brokerStopped: Promise<void> | undefined;
	broker.stop = () => (brokerStopped ??= stopBroker());

	await broker.start();
	if (config.mode === "cluster") {
		await broker.waitForServices(["auth"], DISCOVERY_WAIT_MS).catch(() => console.log(`No node runs the auth service yet (waited ${DISCOVERY_WAIT_MS / 1000} s); commands will fail until one joins.`));
	}
	const runs = config.services.length === 0 ? "no services" : `services: ${config.services.join(", ")}`;
	console.log(`Gateway REPL on node ${config.nodeId} (${config.mode} mode, ${runs}). Type "help" for commands, "exit" to leave.`);
	const server = broker.repl() as REPLServer | undefined;
	if (!server) process.exit(1);
	redactHistory(server);
	// moleculer-repl stops the broker as soon as stdin ends (Ctrl+D, or the end of a piped script),
	// even with commands still running: replace its listener (the only one so far) with ours.
	for (const listener of server.listeners("exit")) server.removeListener("exit", listener as () => void);
	server.on("exit", () => {
		if (stopping) return;
		stopping = true;
		void whenIdle().then(() => shutdown(broker, runtime, null, "end of input", exitCodeAtEndOfInput()));
	});
}

main().catch((err: unknown) => {
	console.error(`REPL failed to start: ${startFailure(err)}`);
	process.exit(1);
});
