/**
 * Starts a real gateway in-process for integration tests: a temporary DATA_DIR with its own SQLite
 * file, migrations, and one ServiceBroker per node (several nodes share the Fake transporter).
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { AddressInfo } from "node:net";
import { ServiceBroker, type BrokerOptions, type LoggerInstance, type ServiceSchema } from "moleculer";
import { createBrokerOptions } from "../../moleculer.config";
import { loadConfig, type GatewayConfig, type ServiceName } from "../../lib/config";
import { migrateUp } from "../../lib/db/migrator";
import { openRuntime, type Runtime } from "../../lib/runtime";

const SERVICES_DIR = join(__dirname, "..", "..", "services");

export interface TestNode {
	broker: ServiceBroker;
	/** http://127.0.0.1:<port> when the node runs the api service. */
	baseUrl: string;
}

export interface TestGateway {
	config: GatewayConfig;
	runtime: Runtime;
	nodes: TestNode[];
	/** The first node: all services unless the test said otherwise. */
	broker: ServiceBroker;
	baseUrl: string;
	stop(): Promise<void>;
}

export interface TestGatewayOptions {
	/** Services per node; one node with every service by default. */
	nodes?: ServiceName[][];
	env?: Record<string, string>;
	brokerOptions?: Partial<BrokerOptions>;
	/** Extra services (test spies) for the first node, created before it starts so every node knows them. */
	services?: ServiceSchema[];
}

/** A logger that says nothing, for the plain classes tests build without a broker. */
export const silentLogger = { warn: () => undefined, info: () => undefined, debug: () => undefined, error: () => undefined } as unknown as LoggerInstance;

export function tempDir(prefix = "tgw-test-"): string {
	return mkdtempSync(join(tmpdir(), prefix));
}

export async function startTestGateway(options: TestGatewayOptions = {}): Promise<TestGateway> {
	const dataDir = tempDir();
	// SERVICES in env picks the test node's services: an embedded process runs all of them (loadConfig
	// refuses a partial list without TRANSPORTER), but a test may want a node with a few.
	const { SERVICES: services, ...env } = options.env ?? {};
	const config = loadConfig({
		LOG_LEVEL: process.env.LOG_LEVEL,
		DATA_DIR: dataDir,
		PORT: "0",
		GRPC_PORT: "0",
		HOST: "127.0.0.1",
		WEBHOOK_ALLOW_PRIVATE: "true",
		...env,
	});
	if (services !== undefined) config.services = services.split(",").map((s) => s.trim()).filter(Boolean) as ServiceName[];
	const runtime = await openRuntime(config);
	await migrateUp(runtime.db);

	const layout = options.nodes ?? [config.services];
	const multiNode = layout.length > 1;
	const nodes: TestNode[] = [];
	for (const [index, services] of layout.entries()) {
		const broker = new ServiceBroker(
			createBrokerOptions(runtime, {
				nodeID: `test-node-${index + 1}`,
				transporter: multiNode ? "Fake" : null,
				...options.brokerOptions,
			}),
		);
		for (const name of services) broker.loadService(join(SERVICES_DIR, `${name}.service`));
		if (index === 0) for (const schema of options.services ?? []) broker.createService(schema);
		nodes.push({ broker, baseUrl: "" });
	}
	await Promise.all(nodes.map((node) => node.broker.start()));
	for (const node of nodes) {
		const api = node.broker.getLocalService("api") as unknown as { server?: { address(): AddressInfo | null } } | undefined;
		const address = api?.server?.address();
		if (address) node.baseUrl = `http://127.0.0.1:${address.port}`;
	}
	if (multiNode) {
		// Every node must know every other (their services and event subscriptions) before a test
		// relies on calls or broadcasts between them; a node's own services would satisfy waitForServices.
		const ids = nodes.map((n) => n.broker.nodeID);
		const deadline = Date.now() + 10_000;
		for (const { broker } of nodes) {
			for (;;) {
				const known = (broker.registry.nodes.list({ onlyAvailable: true, withServices: false }) as Array<{ id: string }>).map((n) => n.id);
				if (ids.every((id) => known.includes(id))) break;
				if (Date.now() > deadline) throw new Error(`node ${broker.nodeID} does not see every other node`);
				await new Promise((r) => setTimeout(r, 20));
			}
		}
		await nodes[0]!.broker.waitForServices(layout.flat().filter((s, i, all) => all.indexOf(s) === i), 10_000);
	}

	return {
		config,
		runtime,
		nodes,
		broker: nodes[0]!.broker,
		baseUrl: nodes.find((n) => n.baseUrl)?.baseUrl ?? "",
		async stop() {
			await Promise.all(nodes.map((node) => node.broker.stop()));
			await runtime.close();
			rmSync(dataDir, { recursive: true, force: true });
		},
	};
}

export interface HttpResult<T = unknown> {
	status: number;
	headers: Headers;
	body: T;
	text: string;
}

/** fetch with JSON in and out; `body` objects are sent as JSON unless a content type is given. */
export async function http<T = Record<string, unknown>>(
	baseUrl: string,
	method: string,
	path: string,
	init: { body?: unknown; headers?: Record<string, string>; raw?: string | Buffer } = {},
): Promise<HttpResult<T>> {
	const headers: Record<string, string> = { ...init.headers };
	let body: string | Buffer | undefined;
	if (init.raw !== undefined) body = init.raw;
	else if (init.body !== undefined) {
		body = JSON.stringify(init.body);
		headers["content-type"] ??= "application/json";
	}
	const res = await fetch(baseUrl + path, { method, headers, body });
	const text = await res.text();
	let parsed: unknown = text;
	try {
		parsed = text ? JSON.parse(text) : undefined;
	} catch {
		// not JSON: leave the text
	}
	return { status: res.status, headers: res.headers, body: parsed as T, text };
}
