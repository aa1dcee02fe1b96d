/**
 * Routes generated from the services' `rest` annotations follow the registry: when the node that
 * runs a service drops out (a crash, a transporter outage), moleculer-web forgets its routes and
 * answers 404, which tells a client the resource does not exist. Keeping such a route until its
 * action is back makes moleculer-web answer 503 instead ("the service is away, try again").
 */
export interface GeneratedAlias {
	route: unknown;
	method: string;
	path: string;
	action: string | null;
	_generated?: boolean;
}

/**
 * The generated aliases of `route` that were in `before` and are missing from `after`, kept only
 * while no alias in `after` names their action (an action that moved to another path is not
 * reachable under its old one).
 */
export function vanishedAliases<T extends GeneratedAlias>(before: readonly T[], after: readonly T[], route: unknown): T[] {
	const key = (alias: T) => `${alias.method} ${alias.path}`;
	const ofRoute = after.filter((alias) => alias.route === route);
	const paths = new Set(ofRoute.map(key));
	const actions = new Set(ofRoute.map((alias) => alias.action));
	return before.filter((alias) => alias.route === route && alias._generated === true && !paths.has(key(alias)) && !actions.has(alias.action));
}
