/** The `this` of the delivery service and of its action groups. */
import type { Service, ServiceSchema, ServiceSettingSchema } from "moleculer";
import type { Agent } from "undici";
import type { Doorbell } from "../../lib/async";
import type { Webhook } from "../../lib/db/models";
import type { LeaseRunner } from "../../lib/lease";
import type { Runtime } from "../../lib/runtime";
import type { ReadAccess } from "../../mixins/event-stream/subscription-hub";
import type { Audience, AudienceList } from "./dispatcher";
import type { DueHints } from "./due-hints";
import type { SigningSecrets } from "./signing";

export const WEBHOOK_SECRET_PURPOSE = "webhook-secret";

export interface DeliveryMethods {
	secretsOf(row: Webhook): SigningSecrets;
	breakerView(webhookId: number): Promise<{ state: string; open_until: string | null }>;
	/** A signed `ping` to the endpoint now, outside the queue; the attempt's result. */
	ping(row: Webhook): Promise<Record<string, unknown>>;
	replay(row: Webhook, from: { afterSeq: number } | { since: Date }): Promise<{ scheduled: number; complete: boolean }>;
	audiences(): Promise<AudienceList>;
	/** What audiences() shares: builds until no invalidation raced the build. */
	buildAudiences(): Promise<AudienceList>;
	/** Drops the cached audiences, and any list being built right now. */
	invalidateAudiences(): void;
	audienceOf(row: Webhook): Promise<Audience>;
	/** What the webhook's owner may read now (auth.principalFor, then auth.chatAccess). */
	ownerAccess(row: Webhook): Promise<ReadAccess>;
	/** Wakes this node's workers (and, on the dispatcher's node, the dispatcher). */
	wake(): void;
	disableEndedKeysWebhooks(keyId?: number): Promise<void>;
}

export interface DeliveryLocalVars {
	runtime: Runtime;
	agent: Agent;
	owner: string;
	leases: LeaseRunner;
	/** Active webhooks with their owners' access, rebuilt when webhooks or grants change. */
	audienceCache: { at: number; list: AudienceList } | null;
	/** Bumped by every invalidation, so a build that raced one is not cached. */
	audienceGeneration: number;
	/** The build under way, shared by every caller (the dispatcher, and each attempt asking its owner's access). */
	audienceBuild: Promise<AudienceList> | null;
	/** Webhooks this node heard may have deliveries due: what a work round asks about between full scans. */
	dueHints: DueHints;
	/** Half-open endpoints whose one probe this node has out, until its outcome is recorded. */
	probing: Set<number>;
	/** This node's attempts on the wire, per endpoint and across every endpoint. */
	inFlight: Map<number, number>;
	inFlightTotal: number;
	/** This node's attempts on the wire per owning user (node-share.ts). */
	ownerInFlight: Map<number, number>;
	/** The user of each API key that owns a webhook (a key never changes hands). */
	keyUsers: Map<number, number>;
	/** Per webhook: this node's attempts that got their answer and wait for the outcome to be recorded. */
	answered: Map<number, number>;
	/** Endpoints with a failure (or a breaker not closed) seen here since their last success. */
	troubled: Set<number>;
	/** Opened secrets per webhook row version ("id:updated_at"). */
	secretCache: Map<string, SigningSecrets>;
	/** Rung when events are stored (the dispatcher) and when deliveries are due or a slot frees (workers). */
	dispatcherBell: Doorbell;
	workerBell: Doorbell;
	/** Rung when a webhook is created, changed or removed (the dispatcher, while no webhook is active). */
	webhooksBell: Doorbell;
	loops: Promise<unknown>[];
	running: boolean;
	/** The hourly look for webhooks of API keys that ran out (ended-owners.ts). */
	endedKeysTimer: NodeJS.Timeout | undefined;
}

export type DeliveryThis = Service<ServiceSettingSchema> & DeliveryMethods & DeliveryLocalVars;

export type DeliveryActions = Pick<ServiceSchema<ServiceSettingSchema, DeliveryThis>, "actions">;
