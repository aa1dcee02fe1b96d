/**
 * Operators' views of webhook delivery across every endpoint (the REPL's `deliveries` and `stats`):
 * deliveries found by status or id whatever their webhook, the queue's size by status, and the
 * endpoints whose breaker is not closed. Not REST routes; admins only.
 */
import { col, fn, Op } from "sequelize";
import { fail } from "../../lib/errors";
import { principalOf, type GatewayContext } from "../../lib/meta";
import { filteredList, pageParams } from "../../lib/paging";
import { breakerState, type BreakerState } from "./breaker";
import { iso } from "../../lib/time";
import { deliveryView } from "./views";
import type { DeliveryActions, DeliveryThis } from "./context";
import { ID } from "../../lib/validator";

const WAITING_STATUSES = ["pending", "in_flight", "failed", "dead"] as const;
/** Breakers looked at per `stats` call: an operator's summary, not an export. */
const BREAKERS_CHECKED_MAX = 1_000;
const BREAKERS_LISTED_MAX = 50;

interface SearchParams {
	status?: string;
	webhook_id?: number;
	delivery_id?: number;
	limit?: number;
	cursor?: string;
}

export const operatorActions: DeliveryActions = {
	actions: {
		searchDeliveries: {
			permission: "webhooks:read",
			params: {
				$$strict: true,
				...pageParams,
				status: { type: "enum", values: ["pending", "in_flight", "succeeded", "failed", "dead"], optional: true },
				webhook_id: { ...ID, optional: true },
				delivery_id: { ...ID, optional: true },
			},
			async handler(this: DeliveryThis, ctx: GatewayContext<SearchParams>) {
				if (!principalOf(ctx).is_admin) throw fail.forbidden("Only admins search deliveries across webhooks");
				const { status, webhook_id, delivery_id } = ctx.params;
				const limit = ctx.params.limit ?? 50;
				const list = filteredList("deliveries", { status, webhook: webhook_id, delivery: delivery_id });
				const before = this.runtime.cursors.after(list, ctx.params.cursor);
				const rows = await this.runtime.db.models.WebhookDelivery.findAll({
					where: {
						...(delivery_id !== undefined ? { id: delivery_id } : before !== null ? { id: { [Op.lt]: before } } : {}),
						...(webhook_id !== undefined ? { webhook_id } : {}),
						...(status !== undefined ? { status } : {}),
					},
					order: [["id", "DESC"]],
					limit: limit + 1,
				});
				return this.runtime.cursors.page(list, rows, limit, (d) => d.id, (d) => deliveryView(d));
			},
		},

		stats: {
			permission: "system:read",
			params: { $$strict: true },
			async handler(this: DeliveryThis) {
				const { db, state } = this.runtime;
				const byStatus = (await db.models.WebhookDelivery.findAll({
					attributes: ["status", [fn("COUNT", col("id")), "count"]],
					where: { status: [...WAITING_STATUSES] },
					group: ["status"],
					raw: true,
				})) as unknown as Array<{ status: string; count: number | string }>;
				const deliveries = Object.fromEntries(WAITING_STATUSES.map((s) => [s, Number(byStatus.find((r) => r.status === s)?.count ?? 0)]));

				const webhooks = await db.models.Webhook.findAll({ attributes: ["id", "url"], where: { is_active: true }, order: [["id", "ASC"]], limit: BREAKERS_CHECKED_MAX, raw: true });
				const states = await Promise.all(webhooks.map(async (w) => ({ webhook: w, ...(await breakerState(state, Number(w.id))) })));
				const breakers: Record<BreakerState, number> = { closed: 0, open: 0, half_open: 0 };
				for (const s of states) breakers[s.state] += 1;
				const notClosed = states
					.filter((s) => s.state !== "closed")
					.slice(0, BREAKERS_LISTED_MAX)
					.map((s) => ({ webhook_id: Number(s.webhook.id), url: s.webhook.url, state: s.state, open_until: s.openUntil ? iso(s.openUntil) : null }));
				const activeWebhooks = await db.models.Webhook.count({ where: { is_active: true } });
				return { deliveries, active_webhooks: activeWebhooks, breakers, not_closed: notClosed };
			},
		},
	},
};
