/**
 * Every broker option in one place. The environment decides the values (lib/config.ts): no
 * TRANSPORTER means the embedded mode (one process, memory cacher); TRANSPORTER + DATABASE_URL +
 * REDIS_URL make a cluster node whose role is the SERVICES it runs.
 */
import type { BrokerOptions, Errors, MetricRegistryOptions, Middleware, TracerExporterOptions, TracerOptions } from "moleculer";
import type { TracingConfig } from "./lib/config";
import { isEndpointFailure } from "./lib/errors";
import { ScrapedPrometheusReporter } from "./lib/metrics";
import { AuthorizeMiddleware } from "./lib/middlewares/authorize";
import { INTERNAL_MIDDLEWARES } from "./lib/middlewares/call-metrics";
import { DbErrorsMiddleware } from "./lib/middlewares/db-errors";
import { DeclaredTimeoutsMiddleware } from "./lib/middlewares/declared-timeouts";
import { HiddenConnectionSecretsMiddleware } from "./lib/middlewares/hidden-connection-secrets";
import { ImplicitIdempotencyKeyMiddleware } from "./lib/middlewares/implicit-idempotency";
import { NullParamsMiddleware } from "./lib/middlewares/null-params";
import { RestartedNodesMiddleware } from "./lib/middlewares/restarted-nodes";
import { attachRuntime, type Runtime } from "./lib/runtime";
import { FlushingZipkinExporter, redactedTags } from "./lib/tracing";
import { GatewayValidator } from "./lib/validator";

/** TRACING_EXPORTER: off, or spans of every action call to the console, to `$tracing.spans` events, or to Zipkin. */
function tracingOptions(tracing: TracingConfig): TracerOptions {
	if (tracing.exporter === "off") return { enabled: false };
	const exporter =
		tracing.exporter === "zipkin"
			? (new FlushingZipkinExporter({ baseURL: tracing.endpoint ?? "", interval: 5 }) as unknown as TracerExporterOptions)
			: tracing.exporter === "event"
				? { type: "Event", options: { eventName: "$tracing.spans", interval: 5 } }
				: { type: "Console", options: { colors: Boolean(process.stdout.isTTY) } };
	return {
		enabled: true,
		exporter,
		sampling: { rate: tracing.sampleRate },
		actions: true,
		events: true,
		errorFields: ["name", "message", "code", "type"],
		stackTrace: false,
		tags: { action: redactedTags, event: redactedTags } as unknown as TracerOptions["tags"],
	};
}

export function createBrokerOptions(runtime: Runtime, overrides: Partial<BrokerOptions> = {}): BrokerOptions {
	const { config } = runtime;
	return {
		namespace: config.namespace,
		nodeID: config.nodeId,
		metadata: { services: config.services },

		logger: {
			type: "Console",
			options: {
				level: config.logLevel,
				colors: Boolean(process.stdout.isTTY),
				moduleColors: false,
				// Timestamps with their date (the short form printed the time alone).
				formatter: "full",
				objectPrinter: null,
				autoPadding: false,
			},
		},
		logLevel: config.logLevel,

		transporter: config.transporter
			? { type: "NATS", options: { url: config.transporter, maxReconnectAttempts: -1, reconnectTimeWait: 1_000 } }
			: null,
		serializer: "JSON",

		// A dead node (SIGKILL sends no goodbye) leaves the registry after heartbeatTimeout.
		heartbeatInterval: 1,
		heartbeatTimeout: 5,
		// Calls to a node that died time out and are retried elsewhere; slow actions set their own.
		requestTimeout: 5_000,
		// Retries cover calls that never ran (no node, timeout on a node that died); actions that
		// must not run twice turn it off for themselves with `retryPolicy: { enabled: false }`.
		retryPolicy: {
			enabled: true,
			retries: 3,
			delay: 200,
			maxDelay: 2_000,
			factor: 2,
			check: (err: Error | Errors.MoleculerError) => Boolean((err as Errors.MoleculerError)?.retryable),
		},
		contextParamsCloning: false,
		maxCallLevel: 50,
		tracking: { enabled: true, shutdownTimeout: 10_000 },
		// bin/gateway.ts owns SIGTERM/SIGINT: it drains entry points before the broker stops.
		skipProcessEventRegistration: true,

		disableBalancer: false,
		registry: { strategy: "RoundRobin", preferLocal: true },
		circuitBreaker: {
			// It routes calls around a failing node; a lone node has none to route to, and an open breaker
			// on its only endpoint refused every call for 10 s after a stall (Telegram's pushes included).
			enabled: Boolean(config.transporter),
			threshold: 0.5,
			minRequestCount: 20,
			windowTime: 60,
			halfOpenTime: 10_000,
			// Failures of the endpoint only: not one bot's or one request's (lib/errors.ts).
			check: isEndpointFailure,
		},
		bulkhead: { enabled: false, concurrency: 50, maxQueueSize: 1_000 },

		cacher: config.redisUrl
			? { type: "Redis", options: { prefix: `${config.namespace}-cache`, ttl: 30, redis: config.redisUrl, maxParamsLength: 128 } }
			: { type: "MemoryLRU", options: { ttl: 30, max: 10_000, clone: false } },

		// fastest-validator, refusing (not throwing on) values it cannot convert (lib/validator.ts); its own
		// enum message puts the allowed values where the wrong one belongs.
		validator: new GatewayValidator({ messages: { enumValue: "The '{field}' field must be one of: {expected}.", arrayUnique: "The '{field}' field lists {expected} more than once." } }) as unknown as BrokerOptions["validator"],
		metrics: {
			enabled: config.metricsEnabled,
			// Moleculer leaves them out when NODE_ENV is "test": the tests see what production shows.
			collectProcessMetrics: true,
			// Served on our own port as GET /metrics (lib/metrics.ts), not on a port of the reporter's.
			// Not process.arguments: the command line may carry what an open /metrics should not show.
			reporter: (config.metricsEnabled ? [new ScrapedPrometheusReporter({ excludes: ["process.arguments"] })] : null) as unknown as MetricRegistryOptions["reporter"],
			// Prometheus computes quantiles from the buckets; Moleculer's own would keep every sample of the last minute.
			defaultQuantiles: null as unknown as number[],
		},
		tracing: tracingOptions(config.tracing),

		// Moleculer's internal middlewares are listed here, in Moleculer's own order, so that its
		// "Metrics" can give way to CallMetricsMiddleware (the same request metrics, far cheaper).
		// Moleculer's typings do not allow the `name` that its runtime logs: hence the cast.
		internalMiddlewares: false,
		middlewares: [
			NullParamsMiddleware,
			DeclaredTimeoutsMiddleware,
			DbErrorsMiddleware,
			RestartedNodesMiddleware,
			HiddenConnectionSecretsMiddleware,
			ImplicitIdempotencyKeyMiddleware,
			// Authorize wraps the validator (a later middleware wraps the earlier ones): a caller without
			// the permission is refused (403) before its params are looked at (400, naming the action's fields).
			...INTERNAL_MIDDLEWARES.flatMap((middleware): unknown[] => (middleware === "Validator" ? [middleware, AuthorizeMiddleware] : [middleware])),
		] as unknown as Middleware[],

		created(broker) {
			attachRuntime(broker, runtime);
		},

		...overrides,
	};
}
