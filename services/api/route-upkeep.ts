/**
 * Routes whose service no node runs (a mixin of services/api.service.ts, over moleculer-web): they
 * answer 503 naming the service rather than vanishing into 404s while a node restarts, and the
 * generated routes are built as soon as this node's own services have started.
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import type { Service, ServiceSchema } from "moleculer";
import ApiGateway from "moleculer-web";
import type { ApiSettingsSchema } from "moleculer-web";
import { isActionReachable, nodesRunning } from "../../lib/reachable";
import { DOCUMENTED_ROUTES_BASE, documentedAliasSpecs, serviceAwayError, vanishedAliases, type GeneratedAlias } from "./aliases";

/** The parts of moleculer-web's service this one reaches into. */
interface GatewayInternals {
	routes: Array<{ opts: { autoAliases?: boolean } }>;
	aliases: GeneratedAlias[];
	optimizeAliasesOrder(): void;
	regenerateAutoAliases(route: unknown): void;
	createAlias(route: unknown, spec: { method: string; path: string; _generated: true }, action: string): GeneratedAlias;
}
type AliasHandler = (this: unknown, req: IncomingMessage, res: ServerResponse, alias: GeneratedAlias) => Promise<unknown>;
const generateAutoAliases = ApiGateway.methods!.regenerateAutoAliases as (this: unknown, route: unknown) => void;
const gatewayAliasHandler = ApiGateway.methods!.aliasHandler as AliasHandler;

type RouteUpkeepThis = Service<ApiSettingsSchema> & {
	/** The api service's (starting until every local service has started). */
	phase: "starting" | "serving" | "draining";
	/** The routes last kept while their service is away ("METHOD /path, ..."), to log only changes. */
	awayRoutes: string;
};

export const RouteUpkeepMixin: Partial<ServiceSchema<ApiSettingsSchema, RouteUpkeepThis>> = {
	events: {
		/**
		 * moleculer-web rebuilds its routes from the services' `rest` annotations 500 ms after they
		 * change; once this node's own services have all started, build them at once so the node
		 * never reports ready while answering 404.
		 */
		"$broker.started"(this: RouteUpkeepThis) {
			const gateway = this as unknown as GatewayInternals;
			// Serving from the routes built in this same turn (and, from now on, saying which are away).
			if (this.phase === "starting") this.phase = "serving";
			for (const route of gateway.routes) if (route.opts.autoAliases) gateway.regenerateAutoAliases(route);
		},
	},

	methods: {
		/**
		 * moleculer-web's rebuild of generated routes, keeping those whose service is away: the ones
		 * it had, and the documented ones it never saw (./api/aliases.ts).
		 */
		regenerateAutoAliases(this: RouteUpkeepThis, route: unknown) {
			const gateway = this as unknown as GatewayInternals;
			const before = gateway.aliases;
			generateAutoAliases.call(this, route);
			const documented =
				(route as { path?: string }).path === DOCUMENTED_ROUTES_BASE
					? documentedAliasSpecs().map(({ method, path, action }) => gateway.createAlias(route, { method, path, _generated: true }, action))
					: [];
			const kept = vanishedAliases([...before, ...documented], gateway.aliases, route);
			const away = kept.map((a) => `${a.method} /${a.path}`).join(", ");
			// Until this node serves, its own services are not all registered yet: nothing to report.
			if (this.phase === "serving" && away !== this.awayRoutes) {
				if (away) this.logger.warn(`Routes whose service no node runs (503 until one does): ${away}`);
				else this.logger.info("Every route's service is reachable");
				this.awayRoutes = away;
			}
			if (kept.length === 0) return;
			gateway.aliases.push(...kept);
			if (this.settings.optimizeOrder) gateway.optimizeAliasesOrder();
		},

		/**
		 * A route whose service no node runs: 503 with Retry-After, naming the service, without
		 * asking Moleculer for the action first (it would log a warning per request).
		 */
		aliasHandler(this: RouteUpkeepThis, req: IncomingMessage, res: ServerResponse, alias: GeneratedAlias) {
			const declared = !(alias as { _notDefined?: boolean })._notDefined;
			if (alias.action && declared && !isActionReachable(this.broker, alias.action)) {
				throw serviceAwayError(alias.action, nodesRunning(this.broker, alias.action.slice(0, alias.action.lastIndexOf("."))).length > 0);
			}
			return gatewayAliasHandler.call(this, req, res, alias);
		},
	},

	created(this: RouteUpkeepThis) {
		this.awayRoutes = "";
	},
};
