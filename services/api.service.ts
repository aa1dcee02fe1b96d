/**
 * api: the REST gateway (moleculer-web) on PORT. Routes come from the `rest` annotations of every
 * service's actions (autoAliases), so a route is found next to the action it calls. This service
 * owns what every request shares: request ids, body limits and types, the error format, /health and
 * /ready, and draining on shutdown. Who is calling (./api/authentication.ts) and the routes of
 * services no node runs (./api/route-upkeep.ts) are mixins of their own.
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import type { Server } from "node:http";
import type { Context, Service, ServiceSchema } from "moleculer";
import ApiGateway from "moleculer-web";
import type { ApiSettingsSchema } from "moleculer-web";
import { GatewayError, isClientError } from "../lib/errors";
import { metricsOf, observeHttpRequests, openMetricsWarning, sendMetrics } from "../lib/metrics";
import type { DefaultTimeoutOptions } from "../lib/middlewares/declared-timeouts";
import { readinessChecks, readinessReport } from "../lib/readiness";
import { runtimeOf, type Runtime } from "../lib/runtime";
import { warnAtMostEvery } from "../lib/throttled-warning";
import { answerOf, checkPushBeforeBody, countedPushBodyReader, pushSecret, telegramPushes, type TelegramPushes } from "./api/telegram-pushes";
import { AuthenticationMixin, checkBeforeBody } from "./api/authentication";
import { answerParserErrors, bodyReader, refuseParamsGivenTwice, requestIdFor, sendError, traceablePath } from "./api/http";
import { allowedMethods } from "./api/aliases";
import { RouteUpkeepMixin } from "./api/route-upkeep";
import { actionsFromServices, buildOpenApi, routesFromAliases, type AliasLike } from "./api/openapi";

/** 15 s unless the action declares longer (lib/middlewares/declared-timeouts.ts). */
const REST_CALL_OPTIONS: DefaultTimeoutOptions = { timeout: 15_000, defaultTimeout: true };

const BODY_LIMIT = "1mb";
const BODY_LIMIT_BYTES = 1024 * 1024;
/** Bodies of requests without a credential verified before the body (public routes, `api_key` in the body). */
const UNVERIFIED_BODY = {
	limit: "64kb",
	message: "Request body is larger than 64 KB: a larger one (up to 1 MB) needs a valid credential in a header or the query, checked before the body is read",
};

interface TelegramPushMeta {
	telegramSecret?: string;
	/** The body's Content-Length (the limit when the request did not say). */
	telegramBytes?: number;
}

interface ApiMethods {
	drain(timeoutMs?: number): Promise<void>;
}

interface ApiLocalVars {
	runtime: Runtime;
	server: Server;
	telegramPushes: TelegramPushes;
	/** starting until every local service has started (./api/route-upkeep.ts), draining from the shutdown signal on. */
	phase: "starting" | "serving" | "draining";
}

type ApiThis = Service<ApiSettingsSchema> & ApiMethods & ApiLocalVars;

const gatewayRestHandler = (ApiGateway.actions!.rest as { handler: (this: unknown, ctx: Context) => unknown }).handler;

/**
 * moleculer-web starts listening with a callback that only ever hears success: a PORT already in use
 * is logged and its started() never settles, so the node hung instead of failing to start. Here a
 * listen error reaches that callback.
 */
function failListenOnError(server: Server): void {
	const listen = server.listen.bind(server) as (...args: unknown[]) => Server;
	server.listen = ((...args: unknown[]) => {
		const callback = args[args.length - 1];
		if (typeof callback !== "function") return listen(...args);
		const onError = (err: Error) => (callback as (err?: Error) => void)(err);
		server.once("error", onError);
		return listen(...args.slice(0, -1), () => {
			server.removeListener("error", onError);
			(callback as () => void)();
		});
	}) as Server["listen"];
}

/** moleculer-web's own sendError, which its typings do not declare. */
type WithSendError = { sendError(req: IncomingMessage, res: ServerResponse, err: unknown): void };

function onError(this: ApiThis, req: IncomingMessage & { $ctx?: Context }, res: ServerResponse, err: unknown): void {
	const apiError = sendError(res, err);
	if (isClientError(err)) return;
	// Never the query (it may carry api_key or token), nor a bot's webhook path (its secret address).
	const path = traceablePath(req.url);
	if (apiError.status !== 503) {
		this.logger.error(`${req.method} ${path} failed (request ${req.$ctx?.requestID ?? "-"}):`, err);
		return;
	}
	// A dependency that is down answers every request 503 for as long as it is: a warning now and
	// then says so, rather than an error stack per request.
	warnAtMostEvery(this.logger, "503", `Answered 503, latest ${req.method} ${path}: ${apiError.body.error.message}`);
}

const ApiService: ServiceSchema<ApiSettingsSchema, ApiThis> = {
	name: "api",
	// Earlier mixins win: these two replace some of moleculer-web's methods.
	mixins: [AuthenticationMixin as Partial<ServiceSchema>, RouteUpkeepMixin as Partial<ServiceSchema>, ApiGateway],

	settings: {
		rest: "/",
		server: true,
		// Request logging by moleculer-web would print query strings, which may hold credentials.
		logRequest: null,
		logResponse: null,
		logRequestParams: null,
		logResponseData: null,
		log4XXResponses: false,
		logRouteRegistration: "debug",
		// Slow or stalled clients cannot hold a request open forever.
		requestTimeout: 30_000,
		optimizeOrder: true,
		// Routes follow the cluster's services: rebuild them soon after a node comes or goes.
		debounceTime: 100,

		// moleculer-web accepts a function here; its typings only know the object form.
		rootCallOptions: ((options: Record<string, unknown>, req: IncomingMessage) => {
			options.requestID = requestIdFor(req.headers["x-request-id"]);
		}) as unknown as ApiSettingsSchema["rootCallOptions"],

		routes: [
			{
				// Telegram's pushes: no user credentials (the bot's secret_token is checked by ingest).
				path: "/api/v1/telegram",
				mappingPolicy: "restrict",
				aliases: { "POST webhook/:path": "api.telegramPush" },
				mergeParams: false,
				bodyParsers: false,
				// An update is its update_id and one kind: 16 leaves room for what Telegram adds.
				// Path and secret are checked before the body is read.
				use: [checkPushBeforeBody, countedPushBodyReader(bodyReader({ limit: BODY_LIMIT, form: false, maxFields: 16 }))],
				callOptions: { timeout: 15_000, retries: 0 },
				onBeforeCall(ctx: Context<unknown, TelegramPushMeta>, _route: unknown, req: IncomingMessage) {
					const secret = pushSecret(req);
					if (secret !== undefined) ctx.meta.telegramSecret = secret;
					const length = Number(req.headers["content-length"]);
					ctx.meta.telegramBytes = Number.isSafeInteger(length) && length >= 0 ? length : BODY_LIMIT_BYTES;
				},
				onError,
			},
			{
				path: "/api/v1",
				autoAliases: true,
				mappingPolicy: "restrict",
				bodyParsers: false,
				// No action takes more than a few dozen fields. The credential is checked before the body is read.
				use: [checkBeforeBody, bodyReader({ limit: BODY_LIMIT, form: true, maxFields: 100, unverified: UNVERIFIED_BODY }), refuseParamsGivenTwice],
				authentication: true,
				callOptions: REST_CALL_OPTIONS,
				onError,
			},
			{
				path: "/",
				mappingPolicy: "restrict",
				aliases: {
					"GET health": "api.health",
					"GET ready": "api.ready",
					"GET api/openapi.json": "api.openapi",
					// Plain HTTP, not an action: the METRICS_TOKEN check reads the header, and scrapes stay off the call metrics.
					"GET metrics"(this: ApiThis, req: IncomingMessage, res: ServerResponse) {
						void sendMetrics(this.broker, this.runtime.config, req, res);
					},
				},
				bodyParsers: false,
				onError,
			},
		],

		onError,
	},

	events: {
		/** A bot came, went or changed its secret: pushes are verified afresh. */
		"bots.changed"(this: ApiThis) {
			this.telegramPushes.forget();
		},
	},

	actions: {
		// The HTTP request itself is never retried: its body is consumed, and calls it makes retry on their own.
		rest: {
			retryPolicy: { enabled: false },
			/**
			 * moleculer-web routes an OPTIONS request to the action of its Access-Control-Request-Method
			 * (GET without one), CORS or not: a browser's preflight would revoke a key or delete a user.
			 * No CORS is offered, so OPTIONS serves nothing.
			 */
			handler(this: ApiThis, ctx: Context<{ req: IncomingMessage & { $ctx?: Context }; res: ServerResponse & { $ctx?: Context } }>) {
				const { req, res } = ctx.params;
				// HEAD is a GET without the body (load balancers probe /health so); node leaves the body out itself.
				if (req.method === "HEAD") req.method = "GET";
				if (req.method !== "OPTIONS") return gatewayRestHandler.call(this, ctx);
				req.$ctx = ctx;
				res.$ctx = ctx;
				if (ctx.requestID) res.setHeader("X-Request-ID", ctx.requestID);
				throw new GatewayError("NOT_FOUND", "No route answers OPTIONS (CORS is not offered)");
			},
			// moleculer-web names the span and tags it with the URL as sent, query and webhook path included.
			tracing: {
				tags: (ctx: Context, ...response: unknown[]) => {
					const { req } = ctx.params as { req: IncomingMessage };
					return response.length > 0 ? {} : { params: { req: { url: traceablePath(req.url), method: req.method } } };
				},
				spanName: (ctx: Context) => {
					const { req } = ctx.params as { req: IncomingMessage };
					return `${req.method} ${traceablePath(req.url)}`;
				},
			},
		},
		// moleculer-web's route-management actions: nobody here needs them, and listAliases has a REST route.
		listAliases: false,
		addRoute: false,
		removeRoute: false,

		/** Telegram's push to a bot's webhook path, answered once ingest has committed its update. */
		telegramPush: {
			// Its path is the bot's secret webhook path: spans leave the params out.
			tracing: { tags: { params: false } },
			params: {
				params: { type: "object", props: { path: { type: "string", max: 128 } } },
				body: { type: "object" },
				query: { type: "object", optional: true },
			},
			async handler(this: ApiThis, ctx: Context<{ params: { path: string }; body: Record<string, unknown> }, TelegramPushMeta>) {
				const { telegramSecret: secret, telegramBytes: bytes = BODY_LIMIT_BYTES } = ctx.meta;
				return answerOf(await this.telegramPushes.submit({ path: ctx.params.params.path, body: ctx.params.body, bytes, ...(secret === undefined ? {} : { secret }) }));
			},
		},

		health: {
			visibility: "published",
			handler(this: ApiThis) {
				return { status: "ok", node: this.broker.nodeID, uptime_seconds: Math.round(process.uptime()) };
			},
		},

		/**
		 * The OpenAPI document of the routes this gateway serves right now. Open, as API.md says: it
		 * holds routes and schemas only, which the error format already names to anyone who asks.
		 */
		openapi: {
			visibility: "published",
			// No parameters, and none refused: a client appending its `?token=` (API.md) gets the document.
			params: {},
			handler(this: ApiThis) {
				const aliases = (this as unknown as { aliases: AliasLike[] }).aliases;
				const services = this.broker.registry.getServiceList({ withActions: true, grouping: true }) as Array<{ actions?: Record<string, Record<string, unknown>> }>;
				return buildOpenApi(routesFromAliases(aliases), actionsFromServices(services), {
					title: "Telegram Bot Gateway",
					version: "v1",
					description: "REST API of the gateway, generated from the routes and parameter schemas it serves. JSON everywhere; /api/v1 also accepts form-encoded bodies. Errors: `{\"error\": {\"code\", \"message\", \"details\"}}`.",
				}, { metricsTokenRequired: this.runtime.config.metricsToken !== null });
			},
		},

		ready: {
			visibility: "published",
			async handler(this: ApiThis, ctx: Context<unknown, { $statusCode?: number }>) {
				const report = readinessReport(await readinessChecks(this.broker, this.runtime), this.phase);
				if (!report.ok) ctx.meta.$statusCode = 503;
				return report.body;
			},
		},
	},

	methods: {


		/**
		 * Replaces moleculer-web's 404: a path served under other methods (PUT /bots) says which, in
		 * the message and in `Allow`. Still a 404 NOT_FOUND: API.md's codes have no 405.
		 */
		send404(this: ApiThis, req: IncomingMessage & { parsedUrl?: string }, res: ServerResponse) {
			const path = req.parsedUrl ?? "";
			const allowed = allowedMethods((this as unknown as { aliases: Parameters<typeof allowedMethods>[0] }).aliases, path);
			if (allowed.length > 0) res.setHeader("Allow", allowed.join(", "));
			const err = allowed.length > 0 ? new GatewayError("NOT_FOUND", `${req.method} is not served on ${path}: it takes ${allowed.join(", ")}`) : new GatewayError("NOT_FOUND", "Not found");
			(this as unknown as WithSendError).sendError(req, res, err);
		},

		/** Replaces moleculer-web's handler, which logs every 5xx with its stack before our onError logs it again. */
		errorHandler(this: ApiThis, req: IncomingMessage, res: ServerResponse, err: unknown) {
			(this as unknown as WithSendError).sendError(req, res, err);
		},

		/** Stops taking requests, lets the ones in flight finish (up to timeoutMs), then closes. */
		async drain(this: ApiThis, timeoutMs = 10_000): Promise<void> {
			this.phase = "draining";
			if (!this.server?.listening) return;
			await new Promise<void>((resolve) => {
				const timer = setTimeout(() => {
					this.server.closeAllConnections();
					resolve();
				}, timeoutMs);
				timer.unref();
				this.server.close(() => {
					clearTimeout(timer);
					resolve();
				});
				this.server.closeIdleConnections();
			});
		},
	},

	created(this: ApiThis) {
		this.runtime = runtimeOf(this.broker);
		this.phase = "starting";
		this.telegramPushes = telegramPushes(this.broker);
		this.settings.port = this.runtime.config.port;
		this.settings.ip = this.runtime.config.host;
		failListenOnError(this.server);
		observeHttpRequests(this.server, metricsOf(this.broker));
		// Node never closes a connection that sends nothing (its request and header timeouts start with
		// a request): anyone could hold sockets open for good. WebSockets clear it at the upgrade and ping.
		this.server.setTimeout(this.runtime.config.idleConnectionTimeoutMs);
		// A request trickled in byte by byte was cut after 58-88 s, not the 30 s the docs promise: Node
		// checks its timeouts every connectionsCheckingInterval (30 s by default; read when it listens),
		// and one whose body was still coming ran to headersTimeout (60 s), which moleculer-web leaves.
		(this.server as typeof this.server & { connectionsCheckingInterval: number }).connectionsCheckingInterval = 2_000;
		this.server.headersTimeout = this.settings.requestTimeout as number;
		answerParserErrors(this.server, this.settings.requestTimeout as number);
	},

	started(this: ApiThis) {
		const warning = openMetricsWarning(this.runtime.config);
		if (warning) this.logger.warn(warning);
	},
};

export default ApiService;
