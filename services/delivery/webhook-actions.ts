/**
 * The webhook routes of API.md: subscriptions (scope all / bot / chat / reply, event types, in-order
 * option), their secrets (shown once; rotation keeps the old one signing for 24 h), a test ping, the
 * delivery log, manual retry and replay. A principal manages the webhooks it owns; admins all.
 * A user has at most WEBHOOKS_PER_USER_MAX active (webhook-quota.ts), and a few tests and replays
 * running at once (caller-slots.ts).
 */
import { col, Op, type WhereOptions } from "sequelize";
import type { Webhook } from "../../lib/db/models";
import { seal } from "../../lib/crypto";
import { fail } from "../../lib/errors";
import { principalOf, respondCreated, respondWith, type GatewayContext } from "../../lib/meta";
import { filteredList, pageParams } from "../../lib/paging";
import { hasPermission, type Principal } from "../auth/principal";
import { callerOf, inCallerSlot, REPLAY_SLOTS, TEST_SLOTS } from "./caller-slots";
import { EVENT_TYPES, ownerMayRead, SCOPES, type Scope } from "./matching";
import { removeDeliveriesOf } from "./retention";
import { newWebhookSecret } from "./signing";
import { assertPublicUrl, parseWebhookUrl } from "./url-safety";
import { headSeq } from "../broker/event-log";
import { deliveryView, webhookView } from "./views";
import type { DeliveryActions, DeliveryThis } from "./context";
import { WEBHOOK_SECRET_PURPOSE } from "./context";
import { owningUsersOf, withinWebhookLimit } from "./webhook-quota";
import type { DeliveryWake } from "./due-hints";
import { ID } from "../../lib/validator";

const ROTATION_OVERLAP_MS = 24 * 3_600_000;

const CONFIG_PARAMS = {
	url: { type: "string", trim: true, min: 8, max: 2048 },
	scope: { type: "enum", values: [...SCOPES] },
	bot_id: { ...ID, optional: true, nullable: true },
	chat_ids: { type: "array", items: { type: "number", integer: true, positive: true }, min: 1, max: 100, unique: true, optional: true, nullable: true },
	reply_to_message_id: { ...ID, optional: true, nullable: true },
	event_types: { type: "array", items: { type: "enum", values: EVENT_TYPES }, min: 1, max: EVENT_TYPES.length, unique: true, optional: true, nullable: true },
	ordered: { type: "boolean", convert: true, optional: true },
	max_concurrency: { type: "number", integer: true, min: 1, max: 64, convert: true, optional: true },
} as const;

interface WebhookConfig {
	url: string;
	scope: Scope;
	bot_id?: number | null;
	chat_ids?: number[] | null;
	reply_to_message_id?: number | null;
	event_types?: string[] | null;
	ordered?: boolean;
	max_concurrency?: number;
}

/** The fields each scope uses: one the request gives for another scope is refused, not silently dropped. */
const SCOPE_FIELDS = {
	bot_id: ["bot"],
	chat_ids: ["chat", "reply"],
	reply_to_message_id: ["reply"],
} as const satisfies Record<string, readonly Scope[]>;

/** Fields `given` (a request's own, not a PATCH's merged view) that `scope` does not use; null clears one and is fine. */
export function fieldsOutsideScope(scope: Scope, given: Partial<WebhookConfig>): Array<{ field: string; message: string }> {
	return Object.entries(SCOPE_FIELDS)
		.filter(([field, scopes]) => given[field as keyof typeof SCOPE_FIELDS] != null && !(scopes as readonly Scope[]).includes(scope))
		.map(([field, scopes]) => ({ field, message: `Scope '${scope}' does not use ${field} (only ${scopes.map((s) => `'${s}'`).join(" and ")} do).` }));
}

/** Scope rules, the URL's safety, and that the owner may read what it subscribes to. */
async function checkConfig(this: DeliveryThis, ctx: GatewayContext, config: WebhookConfig, given: Partial<WebhookConfig> = config): Promise<void> {
	const url = parseWebhookUrl(config.url);
	const { scope } = config;
	const problems = fieldsOutsideScope(scope, given);
	if (scope === "bot" && !config.bot_id) problems.push({ field: "bot_id", message: "Scope 'bot' needs a bot_id." });
	if ((scope === "chat" || scope === "reply") && !config.chat_ids?.length) problems.push({ field: "chat_ids", message: `Scope '${scope}' needs chat_ids.` });
	if (scope === "reply" && !config.reply_to_message_id) problems.push({ field: "reply_to_message_id", message: "Scope 'reply' needs reply_to_message_id." });
	if (problems.length > 0) throw fail.validation(problems);
	// What a webhook sends is message content: its owner must be allowed to read messages at all.
	if (!hasPermission(principalOf(ctx), "messages:read")) throw fail.forbidden("Missing permission messages:read");
	await assertPublicUrl(url, this.runtime.config.webhookAllowPrivate);
	const { db } = this.runtime;
	if (scope === "bot") {
		const bot = await db.models.Bot.findByPk(config.bot_id!, { attributes: ["id", "is_active"] });
		if (!bot?.is_active) throw fail.validation([{ field: "bot_id", message: "No active bot with this id." }]);
	}
	if (scope === "chat" || scope === "reply") {
		// The right first: whether a chat the caller may not read exists is none of its business.
		for (const chatId of config.chat_ids!) {
			if (!(await ctx.call<boolean, { chat_id: number; right: string }>("auth.can", { chat_id: chatId, right: "can_read" }))) throw fail.forbidden(`Needs can_read on chat ${chatId}`);
		}
		const found = new Set((await db.models.Chat.findAll({ where: { id: config.chat_ids! }, attributes: ["id"], raw: true })).map((chat) => Number(chat.id)));
		const missing = config.chat_ids!.filter((id) => !found.has(id));
		if (missing.length > 0) throw fail.validation([{ field: "chat_ids", message: `No chat has the id ${missing.join(", ")}.` }]);
	}
}

function configColumns(config: WebhookConfig) {
	const scoped = (scope: Scope[]) => scope.includes(config.scope);
	return {
		url: config.url,
		scope: config.scope,
		bot_id: scoped(["bot"]) ? config.bot_id! : null,
		chat_ids: scoped(["chat", "reply"]) ? JSON.stringify(config.chat_ids) : null,
		reply_to_message_id: scoped(["reply"]) ? config.reply_to_message_id! : null,
		event_types: config.event_types ? JSON.stringify(config.event_types) : null,
		...(config.ordered !== undefined ? { ordered: config.ordered } : {}),
		...(config.max_concurrency !== undefined ? { max_concurrency: config.max_concurrency } : {}),
	};
}

/**
 * Writes `changes` to the webhook; one that switches it on again counts against its owning user's
 * WEBHOOKS_PER_USER_MAX as a new one would (else creating, switching off and on would pass the cap).
 */
async function updateWithinLimit(this: DeliveryThis, row: Webhook, changes: Partial<Webhook>): Promise<void> {
	if (row.is_active || changes.is_active !== true) {
		await row.update(changes);
		return;
	}
	const { db, config } = this.runtime;
	const owner = (await owningUsersOf(db, [row])).get(row.id) ?? 0;
	await withinWebhookLimit(db, owner, config.webhooksPerUserMax, "is_active", async (t) => {
		await row.update(changes, { transaction: t });
	});
}

/**
 * A webhook made with an API key belongs to that key: once the key is revoked or expired it sends
 * nothing (ended-owners.ts disabled it), so switching it on again would leave it active and silent.
 */
async function refuseEndedOwnerKey(this: DeliveryThis, row: Webhook): Promise<void> {
	if (row.owner_api_key_id === null) return;
	const key = await this.runtime.db.models.ApiKey.findByPk(row.owner_api_key_id, { attributes: ["revoked_at", "expires_at"], raw: true });
	const ended = !key ? "is gone" : key.revoked_at ? "was revoked" : key.expires_at && new Date(key.expires_at).getTime() <= Date.now() ? "expired" : null;
	if (ended) throw fail.conflict(`This webhook belongs to API key ${row.owner_api_key_id}, which ${ended}: it cannot be switched on again; create a new webhook`);
}

/** The webhook if the principal owns it (or is an admin); anyone else's is "not found". */
async function ownWebhook(this: DeliveryThis, principal: Principal, id: number): Promise<Webhook> {
	const row = await this.runtime.db.models.Webhook.findByPk(id);
	const mine = row && (principal.type === "api_key" ? Number(row.owner_api_key_id) === principal.id : Number(row.owner_user_id) === principal.user_id);
	if (!row || (!mine && !principal.is_admin)) throw fail.notFound("Webhook");
	return row;
}

export const webhookActions: DeliveryActions = {
	actions: {
		createWebhook: {
			rest: "POST /webhooks",
			conflict: "the owning user holds WEBHOOKS_PER_USER_MAX active webhooks",
			permission: "webhooks:write",
			retryPolicy: { enabled: false },
			params: { $$strict: true, ...CONFIG_PARAMS },
			async handler(this: DeliveryThis, ctx: GatewayContext<WebhookConfig>) {
				const principal = principalOf(ctx);
				await checkConfig.call(this, ctx, ctx.params);
				const secret = newWebhookSecret();
				const sealed = seal(this.runtime.config.encryptionKeys, WEBHOOK_SECRET_PURPOSE, secret);
				const { db, config } = this.runtime;
				// A key's webhooks count against its user (principal.user_id is the key's owner).
				const row = await withinWebhookLimit(db, principal.user_id, config.webhooksPerUserMax, "webhooks", async (t) =>
					db.models.Webhook.create(
						{
							...configColumns(ctx.params),
							// Its events are those after the log's head now, whichever node stores them and whatever its
							// clock says; held until the webhook is committed, so none of them can be dispatched before it is seen.
							after_seq: await headSeq(db, t),
							owner_user_id: principal.type === "api_key" ? null : principal.user_id || null,
							owner_api_key_id: principal.type === "api_key" ? principal.id : null,
							secret_ciphertext: sealed.ciphertext,
							key_id: sealed.keyId,
							previous_secret_ciphertext: null,
							previous_secret_expires_at: null,
							disabled_reason: null,
						},
						{ transaction: t },
					),
				);
				await this.broker.broadcast("webhooks.changed", { id: row.id });
				respondCreated(ctx, `/webhooks/${row.id}`);
				return { ...webhookView(row), secret };
			},
		},

		listWebhooks: {
			rest: "GET /webhooks",
			permission: "webhooks:read",
			params: { $$strict: true, ...pageParams },
			async handler(this: DeliveryThis, ctx: GatewayContext<{ limit?: number; cursor?: string }>) {
				const principal = principalOf(ctx);
				const limit = ctx.params.limit ?? 50;
				const after = this.runtime.cursors.after("webhooks", ctx.params.cursor);
				const where: WhereOptions = after === null ? {} : { id: { [Op.gt]: after } };
				if (!principal.is_admin) {
					Object.assign(where, principal.type === "api_key" ? { owner_api_key_id: principal.id } : { owner_user_id: principal.user_id });
				}
				const rows = await this.runtime.db.models.Webhook.findAll({ where, order: [["id", "ASC"]], limit: limit + 1 });
				return this.runtime.cursors.page("webhooks", rows, limit, (r) => r.id, (r) => webhookView(r));
			},
		},

		getWebhook: {
			rest: "GET /webhooks/:id",
			permission: "webhooks:read",
			params: { $$strict: true, id: ID },
			async handler(this: DeliveryThis, ctx: GatewayContext<{ id: number }>) {
				const row = await ownWebhook.call(this, principalOf(ctx), ctx.params.id);
				return webhookView(row, await this.breakerView(row.id));
			},
		},

		replaceWebhook: {
			rest: "PUT /webhooks/:id",
			conflict: "switching it on would pass WEBHOOKS_PER_USER_MAX, or the API key owning it ended",
			permission: "webhooks:write",
			params: { $$strict: true, id: ID, ...CONFIG_PARAMS, is_active: { type: "boolean", convert: true, optional: true } },
			async handler(this: DeliveryThis, ctx: GatewayContext<WebhookConfig & { id: number; is_active?: boolean }>) {
				const row = await ownWebhook.call(this, principalOf(ctx), ctx.params.id);
				await checkConfig.call(this, ctx, ctx.params);
				if (ctx.params.is_active === true && !row.is_active) await refuseEndedOwnerKey.call(this, row);
				await updateWithinLimit.call(this, row, {
					...configColumns({ ordered: false, max_concurrency: 8, ...ctx.params }),
					...(ctx.params.is_active !== undefined ? { is_active: ctx.params.is_active, disabled_reason: null } : {}),
				});
				await this.broker.broadcast("webhooks.changed", { id: row.id });
				return webhookView(row);
			},
		},

		updateWebhook: {
			rest: "PATCH /webhooks/:id",
			conflict: "switching it on would pass WEBHOOKS_PER_USER_MAX, or the API key owning it ended",
			permission: "webhooks:write",
			params: {
				$$strict: true,
				id: ID,
				...Object.fromEntries(Object.entries(CONFIG_PARAMS).map(([k, v]) => [k, { ...v, optional: true }])),
				is_active: { type: "boolean", convert: true, optional: true },
			},
			async handler(this: DeliveryThis, ctx: GatewayContext<Partial<WebhookConfig> & { id: number; is_active?: boolean }>) {
				const row = await ownWebhook.call(this, principalOf(ctx), ctx.params.id);
				const current = webhookView(row);
				const { id: _id, is_active, ...changes } = ctx.params;
				const merged: WebhookConfig = {
					url: current.url,
					scope: current.scope,
					bot_id: current.bot_id,
					chat_ids: current.chat_ids,
					reply_to_message_id: current.reply_to_message_id,
					event_types: current.event_types,
					ordered: current.ordered,
					max_concurrency: current.max_concurrency,
					...changes,
				};
				// Switching a webhook off needs no check: an owner who lost access to its chats can still silence it.
				if (Object.keys(changes).length > 0 || is_active === true) await checkConfig.call(this, ctx, merged, changes);
				if (is_active === true && !row.is_active) await refuseEndedOwnerKey.call(this, row);
				await updateWithinLimit.call(this, row, { ...configColumns(merged), ...(is_active !== undefined ? { is_active, disabled_reason: is_active ? null : "disabled by its owner" } : {}) });
				await this.broker.broadcast("webhooks.changed", { id: row.id });
				return webhookView(row);
			},
		},

		deleteWebhook: {
			rest: "DELETE /webhooks/:id",
			permission: "webhooks:write",
			// A busy webhook's log takes a while to remove (2M deliveries: ~10 s on SQLite); a retry would only race it.
			timeout: 120_000,
			retryPolicy: { enabled: false },
			params: { $$strict: true, id: ID },
			async handler(this: DeliveryThis, ctx: GatewayContext<{ id: number }>) {
				const row = await ownWebhook.call(this, principalOf(ctx), ctx.params.id);
				// Stopped first, so nothing new is claimed, then its log goes in short batches (the writer stays free).
				await row.update({ is_active: false, disabled_reason: "being deleted" });
				await this.broker.broadcast("webhooks.changed", { id: row.id });
				await removeDeliveriesOf(this.runtime.db, row.id);
				await row.destroy();
				respondWith(ctx, 204);
				return null;
			},
		},

		rotateWebhookSecret: {
			rest: "POST /webhooks/:id/rotate-secret",
			conflict: "another request changed the secret meanwhile, or the previous rotation's overlap has not ended (see force)",
			permission: "webhooks:write",
			retryPolicy: { enabled: false },
			params: {
				$$strict: true,
				id: ID,
				force: { type: "boolean", convert: true, optional: true, description: "Rotate although the previous rotation's 24 h overlap has not ended: its old secret stops signing at once (a leaked secret)." },
			},
			async handler(this: DeliveryThis, ctx: GatewayContext<{ id: number; force?: boolean }>) {
				const row = await ownWebhook.call(this, principalOf(ctx), ctx.params.id);
				const { current, previous } = this.secretsOf(row);
				// The overlap promised receivers still on the old secret 24 h: a second rotation (a retried
				// call, say) would drop that secret at once, since one previous secret is kept.
				if (!ctx.params.force && previous !== null) {
					const overlapEnds = new Date(row.previous_secret_expires_at!).toISOString();
					throw fail.conflict(
						`The last rotation's old secret still signs until ${overlapEnds}: rotating again now would stop it at once, for receivers not yet on the new one. Rotate after then, or send {"force": true} (a leaked secret).`,
						{ previous_secret_expires_at: overlapEnds },
					);
				}
				const keys = this.runtime.config.encryptionKeys;
				const secret = newWebhookSecret();
				const sealedNew = seal(keys, WEBHOOK_SECRET_PURPOSE, secret);
				const sealedOld = seal(keys, WEBHOOK_SECRET_PURPOSE, current);
				const expires = new Date(Date.now() + ROTATION_OVERLAP_MS);
				const rotated = { secret_ciphertext: sealedNew.ciphertext, previous_secret_ciphertext: sealedOld.ciphertext, previous_secret_expires_at: expires, key_id: sealedNew.keyId };
				// Only over the secret read: of two rotations at once, the second would retire a secret nobody was ever told of.
				const [changed] = await this.runtime.db.models.Webhook.update(rotated, { where: { id: row.id, secret_ciphertext: row.secret_ciphertext, key_id: row.key_id } });
				if (changed !== 1) throw fail.conflict("The secret was changed by another request meanwhile; read the webhook and rotate again if needed");
				// As stored, updated_at included (the update set it).
				await row.reload();
				await this.broker.broadcast("webhooks.changed", { id: row.id });
				return { ...webhookView(row), secret };
			},
		},

		testWebhook: {
			rest: "POST /webhooks/:id/test",
			permission: "webhooks:write",
			timeout: 20_000,
			// A timeout is not a failure to run: run again, it would send (or schedule) everything twice.
			retryPolicy: { enabled: false },
			// The node's backstop; each caller has its own few slots within it (caller-slots.ts).
			bulkhead: { enabled: true, concurrency: 10, maxQueueSize: 50 },
			params: { $$strict: true, id: ID },
			async handler(this: DeliveryThis, ctx: GatewayContext<{ id: number }>) {
				const principal = principalOf(ctx);
				const row = await ownWebhook.call(this, principal, ctx.params.id);
				return inCallerSlot(this.runtime.state, TEST_SLOTS, callerOf(principal), () => this.ping(row));
			},
		},

		listDeliveries: {
			rest: "GET /webhooks/:id/deliveries",
			permission: "webhooks:read",
			params: {
				$$strict: true,
				id: ID,
				...pageParams,
				status: { type: "enum", values: ["pending", "in_flight", "succeeded", "failed", "dead"], optional: true },
			},
			async handler(this: DeliveryThis, ctx: GatewayContext<{ id: number; limit?: number; cursor?: string; status?: string }>) {
				const row = await ownWebhook.call(this, principalOf(ctx), ctx.params.id);
				const limit = ctx.params.limit ?? 50;
				const list = filteredList("deliveries", { webhook: row.id, status: ctx.params.status });
				const before = this.runtime.cursors.after(list, ctx.params.cursor);
				const { WebhookDelivery, WebhookAttempt } = this.runtime.db.models;
				const deliveries = await WebhookDelivery.findAll({
					where: {
						webhook_id: row.id,
						...(before === null ? {} : { id: { [Op.lt]: before } }),
						...(ctx.params.status ? { status: ctx.params.status } : {}),
					},
					order: [["id", "DESC"]],
					limit: limit + 1,
				});
				const attempts = await WebhookAttempt.findAll({ where: { delivery_id: deliveries.map((d) => d.id) }, order: [["id", "ASC"]] });
				return this.runtime.cursors.page(list, deliveries, limit, (d) => d.id, (d) => deliveryView(d, attempts.filter((a) => Number(a.delivery_id) === d.id)));
			},
		},

		retryDelivery: {
			rest: "POST /webhooks/:id/deliveries/:delivery_id/retry",
			conflict: "the delivery is being attempted right now",
			permission: "webhooks:write",
			params: { $$strict: true, id: ID, delivery_id: ID },
			async handler(this: DeliveryThis, ctx: GatewayContext<{ id: number; delivery_id: number }>) {
				const row = await ownWebhook.call(this, principalOf(ctx), ctx.params.id);
				const { WebhookDelivery } = this.runtime.db.models;
				const where = { id: ctx.params.delivery_id, webhook_id: row.id };
				// The worker would not send it anyway (the owner's access is asked before every attempt): say so now.
				const target = await WebhookDelivery.findOne({ where, attributes: ["chat_id"], raw: true });
				if (!target) throw fail.notFound("Delivery");
				const chatId = target.chat_id === null ? null : Number(target.chat_id);
				if (!ownerMayRead((await this.audienceOf(row)).access, { chat_id: chatId })) {
					throw fail.forbidden(chatId === null ? "Only an admin's webhook receives events without a chat" : `The webhook's owner may no longer read chat ${chatId}`);
				}
				// One conditional write: a worker claiming the row between a read and a write would
				// otherwise have its attempt (and its outcome) taken from under it.
				// A retry by hand starts the schedule again; the log keeps counting its attempts.
				const [changed] = await WebhookDelivery.update(
					// A delivered one sent again is not delivered until that attempt succeeds.
					{ status: "pending", schedule_base: col("attempts") as unknown as number, next_attempt_at: new Date(), lease_owner: null, lease_until: null, delivered_at: null },
					{ where: { ...where, status: { [Op.ne]: "in_flight" } } },
				);
				const delivery = await WebhookDelivery.findOne({ where });
				if (!delivery) throw fail.notFound("Delivery");
				if (changed === 0) throw fail.conflict("This delivery is being attempted right now");
				await this.broker.broadcast("delivery.wake", { webhook_ids: [row.id] } satisfies DeliveryWake);
				respondWith(ctx, 202);
				// With its log so far, as the delivery list shows it.
				const { WebhookAttempt } = this.runtime.db.models;
				return deliveryView(delivery, await WebhookAttempt.findAll({ where: { delivery_id: delivery.id }, order: [["id", "ASC"]] }));
			},
		},

		replayWebhook: {
			rest: "POST /webhooks/:id/replay",
			permission: "webhooks:write",
			timeout: 60_000,
			// A timeout is not a failure to run: run again, it would send (or schedule) everything twice.
			retryPolicy: { enabled: false },
			// The node's backstop; each caller has its own slot within it (caller-slots.ts).
			bulkhead: { enabled: true, concurrency: 2, maxQueueSize: 10 },
			params: {
				$$strict: true,
				id: ID,
				since: { type: "date", convert: true, optional: true },
				since_seq: { type: "number", integer: true, min: 0, convert: true, optional: true },
			},
			async handler(this: DeliveryThis, ctx: GatewayContext<{ id: number; since?: Date; since_seq?: number }>) {
				const { since, since_seq } = ctx.params;
				if ((since === undefined) === (since_seq === undefined)) {
					throw fail.validation([
						{ field: "since", message: "Give exactly one of 'since' and 'since_seq'." },
						{ field: "since_seq", message: "Give exactly one of 'since' and 'since_seq'." },
					]);
				}
				const principal = principalOf(ctx);
				const row = await ownWebhook.call(this, principal, ctx.params.id);
				const from = since_seq !== undefined ? { afterSeq: since_seq } : { since: since! };
				const result = await inCallerSlot(this.runtime.state, REPLAY_SLOTS, callerOf(principal), () => this.replay(row, from));
				respondWith(ctx, 202);
				return result;
			},
		},
	},
};
