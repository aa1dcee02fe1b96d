/**
 * Routes generated from the services' `rest` annotations follow the registry: when no node runs a
 * service (its node crashed, the transporter is down, or the worker role has not started yet),
 * moleculer-web has no route for it and answers 404, which tells a client the resource does not
 * exist. Keeping such a route makes the gateway answer 503 instead ("the service is away, try
 * again"): the routes seen before, and every documented route of this build, even on an api node
 * that never saw a node running its service.
 */
import { GatewayError } from "../../lib/errors";

export interface GeneratedAlias {
	route: unknown;
	method: string;
	path: string;
	action: string | null;
	_generated?: boolean;
}

/** The route the documented table belongs to (moleculer-web's route path). */
export const DOCUMENTED_ROUTES_BASE = "/api/v1";

/**
 * Every route the services of this build generate under /api/v1 (API.md's REST table), as
 * "METHOD path" -> the action it calls. test/integration/api-documented-routes.spec.ts checks it
 * against the routes a gateway running every service generates, so it cannot drift from them.
 */
export const DOCUMENTED_ROUTES: Readonly<Record<string, string>> = {
	"POST auth/login": "auth.login",
	"POST auth/refresh": "auth.refresh",
	"POST auth/logout": "auth.logout",
	"GET auth/me": "auth.me",
	"POST users": "auth.createUser",
	"GET users": "auth.listUsers",
	"GET users/:id": "auth.getUser",
	"PATCH users/:id": "auth.updateUser",
	"DELETE users/:id": "auth.deleteUser",
	"POST apikeys": "auth.createApiKey",
	"GET apikeys": "auth.listApiKeys",
	"GET apikeys/:id": "auth.getApiKey",
	"DELETE apikeys/:id": "auth.revokeApiKey",
	"POST apikeys/:id/rotate": "auth.rotateApiKey",
	"POST bots": "bots.create",
	"GET bots": "bots.list",
	"GET bots/:id": "bots.get",
	"PATCH bots/:id": "bots.update",
	"DELETE bots/:id": "bots.remove",
	"GET chats": "chats.list",
	"GET chats/:id": "chats.get",
	"GET chats/:id/permissions": "auth.listChatPermissions",
	"PUT chats/:id/permissions": "auth.putChatPermission",
	"DELETE chats/:id/permissions/:grant_id": "auth.deleteChatPermission",
	"GET chats/:id/messages": "chats.messages",
	"POST chats/:id/messages": "chats.send",
	"GET messages/:id": "chats.getMessage",
	"POST webhooks": "delivery.createWebhook",
	"GET webhooks": "delivery.listWebhooks",
	"GET webhooks/:id": "delivery.getWebhook",
	"PUT webhooks/:id": "delivery.replaceWebhook",
	"PATCH webhooks/:id": "delivery.updateWebhook",
	"DELETE webhooks/:id": "delivery.deleteWebhook",
	"POST webhooks/:id/rotate-secret": "delivery.rotateWebhookSecret",
	"POST webhooks/:id/test": "delivery.testWebhook",
	"GET webhooks/:id/deliveries": "delivery.listDeliveries",
	"POST webhooks/:id/deliveries/:delivery_id/retry": "delivery.retryDelivery",
	"POST webhooks/:id/replay": "delivery.replayWebhook",
};

/** The documented routes as alias specs for moleculer-web's createAlias (path relative to the route). */
export function documentedAliasSpecs(): Array<{ method: string; path: string; action: string }> {
	return Object.entries(DOCUMENTED_ROUTES).map(([route, action]) => {
		const [method, path] = route.split(" ") as [string, string];
		return { method, path, action };
	});
}

/**
 * The generated aliases of `route` among `candidates` (the aliases before a rebuild, and the
 * documented ones) that are missing from `after`, once each, kept only while no alias in `after`
 * names their action (an action that moved to another path is not reachable under its old one).
 */
export function vanishedAliases<T extends GeneratedAlias>(candidates: readonly T[], after: readonly T[], route: unknown): T[] {
	const key = (alias: T) => `${alias.method} ${alias.path}`;
	const ofRoute = after.filter((alias) => alias.route === route);
	const taken = new Set(ofRoute.map(key));
	const actions = new Set(ofRoute.map((alias) => alias.action));
	return candidates.filter((alias) => {
		if (alias.route !== route || alias._generated !== true || taken.has(key(alias)) || actions.has(alias.action)) return false;
		taken.add(key(alias));
		return true;
	});
}

export const SERVICE_AWAY_RETRY_AFTER_SECONDS = 5;

/**
 * The answer for a route whose action no node can take right now: no node runs its service, or
 * (`running`) every node that does has its circuit breaker open after failed calls.
 */
export function serviceAwayError(action: string, running = false): GatewayError {
	const service = action.slice(0, action.lastIndexOf("."));
	const why = running ? "its recent calls failed on every node running it" : "no node runs it right now";
	return new GatewayError("UNAVAILABLE", `The ${service} service is unavailable (${why}), try again later`, {
		retry_after: SERVICE_AWAY_RETRY_AFTER_SECONDS,
	});
}

/** The loose shape of a moleculer-web Alias, as far as allowedMethods reads it. */
interface MatchableAlias {
	method: string;
	match(url: string): unknown;
}

/** The methods the routes serve on `url` (none: the path itself is unknown), for a 404's `Allow`. */
export function allowedMethods(aliases: readonly MatchableAlias[], url: string): string[] {
	const methods = new Set<string>();
	for (const alias of aliases) if (alias.method !== "*" && alias.match(url)) methods.add(alias.method);
	return [...methods].sort();
}
