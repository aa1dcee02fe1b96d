/**
 * delivery: outbound webhooks. One dispatcher in the cluster turns the event log into delivery rows
 * (dispatcher.ts); every delivery node claims due rows under a lease (claims.ts) in its work loop
 * (worker.ts), POSTs them signed (attempt.ts), and records each attempt (outcomes.ts). Retries
 * follow schedule.ts; each endpoint has a breaker shared by all nodes (breaker.ts) and a
 * concurrency cap across all nodes, so one slow or failing endpoint never holds up the others;
 * each owning user has a share of every node's attempts (node-share.ts), so one tenant's endpoints
 * never hold up another's.
 */
import { randomBytes, randomUUID } from "node:crypto";
import type { Context, ServiceSchema, ServiceSettingSchema } from "moleculer";
import type { Webhook } from "../lib/db/models";
import { unseal } from "../lib/crypto";
import { GatewayError } from "../lib/errors";
import { Doorbell } from "../lib/async";
import { LeaseRunner } from "../lib/lease";
import { metricsOf } from "../lib/metrics";
import { runtimeOf } from "../lib/runtime";
import { retentionMixin } from "../mixins/retention.mixin";
import { iso } from "../lib/time";
import type { AuthChange } from "./auth/cache";
import type { ReadAccess } from "../mixins/event-stream/subscription-hub";
import { hasPermission, type Principal } from "./auth/principal";
import { attemptDelivery, createOutboundAgent } from "./delivery/attempt";
import { breakerCounts, breakerState } from "./delivery/breaker";
import { WEBHOOK_SECRET_PURPOSE, type DeliveryThis } from "./delivery/context";
import { audiencesOf, ownerReaderOf } from "./delivery/audiences";
import { activeWebhooksNow, scheduleReplay, type Audience, type AudienceList } from "./delivery/dispatcher";
import { webhookActions } from "./delivery/webhook-actions";
import { dispatcherLoop, workLoop } from "./delivery/worker";
import { DueHints, type DeliveryWake } from "./delivery/due-hints";
import { operatorActions } from "./delivery/operator-actions";
import { disableWebhooksOfEndedKeys } from "./delivery/ended-owners";
import { webhookDeliveriesRetention } from "./delivery/retention";
import { ruleOf } from "./delivery/views";

const DISPATCHER_LEASE_MS = 10_000;
const AUDIENCE_TTL_MS = 2_000;
/** Webhooks of API keys that ran out are looked for this often (a revocation is heard at once). */
const ENDED_KEYS_EVERY_MS = 60 * 60_000;

async function ownerPrincipal(service: DeliveryThis, row: Webhook): Promise<Principal | null> {
	const params = row.owner_api_key_id !== null ? { api_key_id: Number(row.owner_api_key_id) } : { user_id: Number(row.owner_user_id) };
	return service.broker.call<Principal | null, object>("auth.principalFor", params);
}

const DeliveryService: ServiceSchema<ServiceSettingSchema, DeliveryThis> = {
	name: "delivery",
	// Finished deliveries past WEBHOOK_DELIVERY_RETENTION_DAYS go hourly (delivery/retention.ts).
	mixins: [webhookActions, operatorActions, retentionMixin([webhookDeliveriesRetention])],
	settings: { rest: "/" },

	events: {
		"gateway.events"(this: DeliveryThis) {
			this.dispatcherBell.ring();
		},
		/** New deliveries, or due again (now, or at a retry's time): of these webhooks when named, otherwise of any (a full scan). */
		"delivery.wake"(this: DeliveryThis, ctx: Context<DeliveryWake>) {
			// A wake of another shape (an older node's) is answered with a full scan: nothing is missed.
			const { webhook_ids, retries } = ctx.params ?? {};
			if (Array.isArray(webhook_ids)) this.dueHints.hint(webhook_ids.filter((id) => Number.isSafeInteger(id)));
			else if (Array.isArray(retries)) for (const { webhook_id: id, at } of retries.filter((r) => Number.isSafeInteger(r?.webhook_id) && Number.isFinite(r?.at))) this.dueHints.hint([id], at);
			else this.dueHints.scanAll();
			this.workerBell.ring();
		},
		"webhooks.changed"(this: DeliveryThis) {
			// A webhook switched back on may have deliveries waiting: look at every one.
			this.dueHints.scanAll();
			this.invalidateAudiences();
			this.dispatcherBell.ring();
			this.workerBell.ring();
			this.webhooksBell.ring();
		},
		async "auth.changed"(this: DeliveryThis, ctx: Context<AuthChange>) {
			// Webhooks act for their owner, not for a login: an ended login changes none of them.
			if (ctx.params.kind === "session") return;
			this.invalidateAudiences();
			if (ctx.params.kind === "api_key") await this.disableEndedKeysWebhooks(ctx.params.id);
		},
	},

	methods: {
		secretsOf(this: DeliveryThis, row: Webhook) {
			// Opened once per version of the row, not once per delivery.
			const version = `${row.id}:${new Date(row.updated_at).getTime()}`;
			const cached = this.secretCache.get(version);
			if (cached && (cached.previous === null || (row.previous_secret_expires_at && new Date(row.previous_secret_expires_at).getTime() > Date.now()))) return cached;
			const keys = this.runtime.config.encryptionKeys;
			const open = (ciphertext: string) => {
				try {
					return unseal(keys, WEBHOOK_SECRET_PURPOSE, { ciphertext, keyId: row.key_id });
				} catch (err) {
					// A key dropped from TOKEN_ENCRYPTION_KEYS too early, or other bytes under its id: nothing can be signed.
					throw new GatewayError("UNAVAILABLE", `Webhook ${row.id}'s signing secret cannot be read (${(err as Error).message}): TOKEN_ENCRYPTION_KEYS must hold the key "${row.key_id}" it was sealed with`);
				}
			};
			const current = open(row.secret_ciphertext);
			const stillSigning = row.previous_secret_ciphertext && row.previous_secret_expires_at && new Date(row.previous_secret_expires_at).getTime() > Date.now();
			const previous = stillSigning ? open(row.previous_secret_ciphertext!) : null;
			if (this.secretCache.size > 10_000) this.secretCache.clear();
			this.secretCache.set(version, { current, previous });
			return { current, previous };
		},

		async breakerView(this: DeliveryThis, webhookId: number) {
			const { state, openUntil } = await breakerState(this.runtime.state, webhookId);
			return { state, open_until: openUntil ? iso(openUntil) : null };
		},

		async ping(this: DeliveryThis, row: Webhook) {
			const body = JSON.stringify({ event_id: `ping_${randomUUID()}`, event: "ping", seq: 0, bot_id: null, chat_id: null, timestamp: new Date().toISOString() });
			const id = JSON.parse(body).event_id as string;
			const result = await attemptDelivery(this.agent, row.url, this.secretsOf(row), { id, event: "ping", deliveryId: id, body }, this.runtime.config.webhookAllowPrivate);
			const ok = result.statusCode !== null && result.statusCode >= 200 && result.statusCode < 300;
			return { ok, status_code: result.statusCode, duration_ms: result.durationMs, error: result.error, response_excerpt: result.excerpt };
		},

		async audienceOf(this: DeliveryThis, row: Webhook): Promise<Audience> {
			return { rule: ruleOf(row), access: await this.ownerAccess(row) };
		},

		async ownerAccess(this: DeliveryThis, row: Webhook): Promise<ReadAccess> {
			const principal = await ownerPrincipal(this, row);
			// A key whose scopes leave out messages:read reads no message content, through a webhook neither;
			// an owner that lost every webhooks:* permission (demoted to viewer) is sent nothing it could no longer stop.
			const mayOwnWebhooks = principal && (hasPermission(principal, "webhooks:read") || hasPermission(principal, "webhooks:write"));
			if (!principal || !mayOwnWebhooks || !hasPermission(principal, "messages:read")) return { all: false, chats: new Set() };
			const access = await this.broker.call<{ all: boolean; chat_ids: number[] }, object>("auth.chatAccess", { right: "can_read" }, { meta: { principal } });
			return { all: access.all, chats: new Set(access.chat_ids) };
		},

		invalidateAudiences(this: DeliveryThis) {
			this.audienceCache = null;
			this.audienceGeneration += 1;
		},

		/**
		 * Active webhooks and what each owner may read, for the dispatcher (kept two seconds). A list
		 * built while a webhook or grant changed is already stale: it is built again, never used,
		 * or the events dispatched with it would miss the new webhook for good. Which webhooks were
		 * active is read first, so a change during the build makes the dispatcher's check fail too.
		 */
		async audiences(this: DeliveryThis): Promise<AudienceList> {
			if (this.audienceCache && Date.now() - this.audienceCache.at < AUDIENCE_TTL_MS) return this.audienceCache.list;
			// Every attempt on the wire (up to 256, node-share.ts) asks when the list expires: one build serves them all.
			this.audienceBuild ??= this.buildAudiences().finally(() => {
				this.audienceBuild = null;
			});
			return this.audienceBuild;
		},

		async buildAudiences(this: DeliveryThis): Promise<AudienceList> {
			for (;;) {
				if (this.audienceCache && Date.now() - this.audienceCache.at < AUDIENCE_TTL_MS) return this.audienceCache.list;
				const generation = this.audienceGeneration;
				const active = await activeWebhooksNow(this.runtime.db);
				const rows = await this.runtime.db.models.Webhook.findAll({ where: { is_active: true } });
				// Once per owner, not per webhook: an owner's access may list 100k chats (delivery/audiences.ts).
				const audiences = await audiencesOf(rows, (row) => this.ownerAccess(row));
				if (generation !== this.audienceGeneration) continue;
				const list = { audiences, active };
				this.audienceCache = { at: Date.now(), list };
				return list;
			}
		},

		async replay(this: DeliveryThis, row: Webhook, from) {
			const result = await scheduleReplay(this.runtime.db, await this.audienceOf(row), from, 100_000, ownerReaderOf(row));
			await this.broker.broadcast("delivery.wake", { webhook_ids: [row.id] } satisfies DeliveryWake);
			return result;
		},

		/**
		 * Webhooks of a revoked or expired key (only `keyId`'s when given) are disabled
		 * (./delivery/ended-owners.ts); every node may try, the update is idempotent.
		 */
		async disableEndedKeysWebhooks(this: DeliveryThis, keyId?: number): Promise<void> {
			try {
				const disabled = await disableWebhooksOfEndedKeys(this.runtime.db, new Date(), keyId);
				if (disabled > 0) await this.broker.broadcast("webhooks.changed", {});
			} catch (err) {
				this.logger.warn("Cannot disable the webhooks of ended API keys:", (err as Error).message);
			}
		},

		wake(this: DeliveryThis) {
			this.dispatcherBell.ring();
			this.workerBell.ring();
			this.webhooksBell.ring();
		},
	},

	created(this: DeliveryThis) {
		this.runtime = runtimeOf(this.broker);
		this.agent = createOutboundAgent(this.runtime.config.webhookAllowPrivate);
		this.owner = `${this.broker.nodeID}:${randomBytes(4).toString("hex")}`;
		this.leases = new LeaseRunner(this.runtime.state, this.owner, { ttlMs: DISPATCHER_LEASE_MS });
		this.audienceCache = null;
		this.audienceGeneration = 0;
		this.audienceBuild = null;
		this.dueHints = new DueHints();
		this.probing = new Set();
		this.inFlight = new Map();
		this.inFlightTotal = 0;
		this.ownerInFlight = new Map();
		this.keyUsers = new Map();
		this.answered = new Map();
		this.troubled = new Set();
		this.secretCache = new Map();
		this.dispatcherBell = new Doorbell();
		this.workerBell = new Doorbell();
		this.webhooksBell = new Doorbell();
		this.loops = [];
		this.running = false;
		this.endedKeysTimer = undefined;
	},

	async started(this: DeliveryThis) {
		this.running = true;
		this.loops = [workLoop(this), dispatcherLoop(this)];
		// Once now (keys may have run out while no delivery node ran), then hourly.
		void this.disableEndedKeysWebhooks();
		this.endedKeysTimer = setInterval(() => void this.disableEndedKeysWebhooks(), ENDED_KEYS_EVERY_MS).unref();
		metricsOf(this.broker).sample("webhook_breakers", this.name, () => breakerCounts(this.runtime.db, this.runtime.state));
	},

	async stopped(this: DeliveryThis) {
		metricsOf(this.broker).withdraw("webhook_breakers", this.name);
		this.running = false;
		clearInterval(this.endedKeysTimer);
		this.leases.abortAll();
		this.wake();
		await Promise.allSettled(this.loops);
		await this.agent.close();
	},
};

export default DeliveryService;
