/**
 * How the REPL reaches the gateway: only through the cluster's actions (broker.call), so a node that
 * runs no service at all can operate the whole cluster. Every call carries SYSTEM_PRINCIPAL, the
 * principal internal callers use (lib/middlewares/authorize.ts): the actions' own permission checks
 * and validation run as for any admin; nothing is bypassed.
 */
import type { ServiceBroker } from "moleculer";
import type { Page } from "../paging";
import { nodesRunning } from "../reachable";
import { SYSTEM_PRINCIPAL } from "../../services/auth/principal";
import { UsageError, type UserRef } from "./args";

export interface GatewayClient {
	call<T>(action: string, params?: Record<string, unknown>, options?: { nodeID?: string }): Promise<T>;
	/** The available nodes that run a service, sorted. */
	nodesRunning(service: string): string[];
}

export function gatewayClient(broker: ServiceBroker): GatewayClient {
	return {
		call<T>(action: string, params: Record<string, unknown> = {}, options: { nodeID?: string } = {}) {
			return broker.call<T, Record<string, unknown>>(action, params, { ...options, meta: { principal: SYSTEM_PRINCIPAL } });
		},
		nodesRunning(service: string) {
			return nodesRunning(broker, service);
		},
	};
}

/** Every row of a paged list action, up to `max` (an operator's listing, not an export). */
export async function allPages<T>(client: GatewayClient, action: string, params: Record<string, unknown> = {}, max = 1_000): Promise<T[]> {
	const rows: T[] = [];
	let cursor: string | null = null;
	do {
		const page: Page<T> = await client.call<Page<T>>(action, { ...params, limit: 200, ...(cursor ? { cursor } : {}) });
		rows.push(...page.data);
		cursor = page.next_cursor;
	} while (cursor && rows.length < max);
	return rows.slice(0, max);
}

/** A user's id from an id or a username (looked up through auth.listUsers). */
export async function userIdOf(client: GatewayClient, ref: UserRef): Promise<number> {
	if ("id" in ref) return ref.id;
	const users = await allPages<{ id: number; username: string }>(client, "auth.listUsers", {}, 100_000);
	const user = users.find((u) => u.username === ref.username);
	if (!user) throw new UsageError(`no user named "${ref.username}"`);
	return user.id;
}
