/**
 * Live events for the consumer-facing services (realtime: socket.io and WebSocket; grpc: server
 * streams). It keeps this node's ordered, gap-free feed of the event log, and a hub of subscribers,
 * each checked against the chat ACL when it subscribes and again whenever auth reports a change to
 * its user, key or grants (and every 15 s regardless): a revoked key, a deleted user or a withdrawn
 * grant loses its live subscriptions at once.
 */
import type { Context, Service, ServiceSchema, ServiceSettingSchema } from "moleculer";
import { fail, GatewayError, toApiError } from "../lib/errors";
import { Slots } from "../lib/slots";
import { metricsOf } from "../lib/metrics";
import { isActionReachable } from "../lib/reachable";
import { runtimeOf, type Runtime } from "../lib/runtime";
import { OutageNotice } from "../lib/throttled-warning";
import type { AuthChange } from "../services/auth/cache";
import type { Right } from "../services/auth/grants";
import { hasPermission, principalKey, type Principal } from "../services/auth/principal";
import type { GatewayEvent, Reader } from "../services/broker/event-log";
import { EventFeed } from "../services/broker/feed";
import type { EventsMessage } from "../services/broker/publish";
import { REPLAY_CHAT_IDS_MAX, type ReplayParams } from "../services/broker.service";
import { connectionCountsOf } from "./event-stream/connection-counts";
import { skipWhileRunning } from "./event-stream/skip-while-running";
import { SubscriptionHub, type Subscriber, type Topic } from "./event-stream/subscription-hub";
import { streamStats } from "./event-stream/stream-stats";

const REPLAY_PAGE = 500;
/**
 * Replay pages read and sent at once on this node, all subscriptions together, taken in turn by
 * principal. 40 sockets of one tenant replaying from seq 0 at once held the event loop for seconds
 * (other tenants' pushes, sends and reads waited 5-18 s): replays now take turns, page by page,
 * and live traffic runs between the pages.
 */
const REPLAY_PAGES_AT_ONCE = 2;
const REVALIDATE_EVERY_MS = 15_000;
/** How long a subscribe waits for this node's feed to join the log (just after the node started). */
const FEED_WAIT_MS = 5_000;
/** A feed that has not joined the log this long after the node started says so. */
const FEED_JOIN_QUIET_MS = 2_000;
/**
 * A connection whose credential was being resolved when an auth change was heard may hold the
 * answer from before it (auth's caches, a key's argon2 check under way): changes this recent are
 * checked again for every new connection they may concern.
 */
const RECENT_CHANGE_MS = 2_000;
/** After a change: at once, and again once auth's own caches (400 ms) have certainly forgotten the old answer. */
const RECHECK_AFTER_MS = [50, 500];

export interface EventStreamLocalVars {
	runtime: Runtime;
	hub: SubscriptionHub;
	feed: EventFeed;
	/** subscriber id -> the credential it connected with, to resolve its principal again. */
	credentials: Map<string, string>;
	expiryTimers: Map<string, NodeJS.Timeout>;
	revalidateTimer?: NodeJS.Timeout;
	/** The periodic re-check of every connection: skipped while the previous one still runs. */
	revalidateEveryone: () => Promise<void>;
	/** The next try to join the event log, while this node's feed has not joined it yet. */
	feedJoinTimer?: NodeJS.Timeout;
	/** Turns at reading and sending a replay page (REPLAY_PAGES_AT_ONCE), by principal. */
	replayTurns: Slots;
	/** auth.changed heard in the last RECENT_CHANGE_MS, oldest first. */
	recentAuthChanges: Array<{ at: number; change: AuthChange }>;
	/** The feed cannot read the log (no node runs broker, or it fails): said when it begins and ends. */
	feedOutage: OutageNotice;
}

export interface EventStreamMethods {
	/** Resolves a credential to a principal (the connection is refused when it throws). */
	resolveCredential(credential: string): Promise<Principal>;
	/** Throws RATE_LIMITED when the principal holds as many live connections on this node as it may, UNAVAILABLE when the node does. */
	streamAdmit(principal: Principal): void;
	/** Registers a connection; over a cap it is closed instead (RATE_LIMITED, or UNAVAILABLE for the node's) and false returned. */
	streamConnect(subscriber: Subscriber, credential: string): boolean;
	streamDisconnect(subscriberId: string): void;
	/**
	 * Authorises and adds a subscription (at most SUBSCRIPTIONS_PER_CONNECTION per subscriber), replaying the log after sinceSeq first when given;
	 * `authorized` runs once the ACL said yes (to confirm to the client), and the subscription is in
	 * the hub by the end of that same turn, before the replay: resolves when the replay is over.
	 */
	streamSubscribe(subscriber: Subscriber, topic: Topic, sinceSeq?: number, authorized?: () => void): Promise<void>;
	streamUnsubscribe(subscriberId: string, topic: Topic): boolean;
	revalidate(subscribers: Subscriber[]): Promise<void>;
	/** revalidate() at RECHECK_AFTER_MS. */
	revalidateSoon(subscribers: Subscriber[]): void;
	revalidateGroup(credential: string, group: Subscriber[]): Promise<void>;
}

export type EventStreamThis = Service<ServiceSettingSchema> & EventStreamLocalVars & EventStreamMethods;

/** This node holds LIVE_CONNECTIONS_PER_NODE live connections already. */
export function nodeFull(limit: number): GatewayError {
	return new GatewayError("UNAVAILABLE", `This node holds as many live connections as it may (LIVE_CONNECTIONS_PER_NODE, ${limit}): connect again later`, { retry_after: 1 });
}

/** Past SUBSCRIPTIONS_PER_CONNECTION: the connection stays, the subscribe is refused until it unsubscribes from something. */
function tooManySubscriptions(limit: number): GatewayError {
	const message = `A connection holds at most ${limit} subscriptions (SUBSCRIPTIONS_PER_CONNECTION): unsubscribe from one first`;
	// CONFLICT, as the other per-principal caps (API keys, webhooks): the request is valid, the connection is full.
	return new GatewayError("CONFLICT", message, { field: "subscriptions", limit });
}

function callAs<T>(service: EventStreamThis, principal: Principal, action: string, params: object): Promise<T> {
	return service.broker.call<T, object>(action, params, { meta: { principal } });
}

/** Whose grants bound a non-admin replay: an API key's own, or the user's (as auth's loadGrants reads them). */
function readerOf(principal: Principal): Reader {
	return { type: principal.type === "api_key" ? "api_key" : "user", id: principal.id };
}

function affects(change: AuthChange, principal: Principal): boolean {
	switch (change.kind) {
		case "user":
			return principal.user_id === change.id;
		case "api_key":
			return principal.type === "api_key" && principal.id === change.id;
		case "session":
			// Which connections came with that login's tokens is not tracked: the user's are checked again.
			return principal.type === "user" && principal.user_id === change.user_id;
		case "grants":
			return (principal.type === "user" && principal.id === change.user_id) || (principal.type === "api_key" && principal.id === change.api_key_id);
	}
}

export const EventStreamMixin: Partial<ServiceSchema<ServiceSettingSchema, EventStreamThis>> = {
	actions: {
		/** This node's live connections (REPL `stats` asks every node running the service). */
		stats: {
			permission: "system:read",
			params: { $$strict: true },
			handler(this: EventStreamThis) {
				return { node_id: this.broker.nodeID, feed_seq: this.feed.position, ...streamStats(this.hub.list().map((s) => s.id), this.hub.subscriptionCount) };
			},
		},
	},

	events: {
		"gateway.events"(this: EventStreamThis, ctx: Context<EventsMessage>) {
			this.feed.receive(ctx.params.events);
		},

		/** The connections it concerns are checked again (revalidateSoon): the outcome holds well within a second. */
		"auth.changed"(this: EventStreamThis, ctx: Context<AuthChange>) {
			const now = Date.now();
			this.recentAuthChanges.push({ at: now, change: ctx.params });
			while (this.recentAuthChanges[0]!.at < now - RECENT_CHANGE_MS) this.recentAuthChanges.shift();
			const affected = this.hub.list().filter((s) => affects(ctx.params, s.principal));
			if (affected.length > 0) this.revalidateSoon(affected);
		},
	},

	methods: {
		resolveCredential(this: EventStreamThis, credential: string): Promise<Principal> {
			return this.broker.call<Principal, { credential: string }>("auth.resolve", { credential });
		},

		streamAdmit(this: EventStreamThis, principal: Principal) {
			const { liveConnectionsPerPrincipal: perPrincipal, liveConnectionsPerUser: perUser, liveConnectionsPerNode: perNode } = this.runtime.config;
			const counts = connectionCountsOf(this.broker);
			// UNAVAILABLE, not RATE_LIMITED: nothing the client did, and another node may take it.
			if (counts.total >= perNode) throw nodeFull(perNode);
			if (counts.of(principal) >= perPrincipal) {
				throw new GatewayError("RATE_LIMITED", `Too many live connections: at most ${perPrincipal} per principal on this node (LIVE_CONNECTIONS_PER_PRINCIPAL)`, { retry_after: 1 });
			}
			// The system principal (user 0) is the gateway's own and not capped per user.
			if (principal.user_id !== 0 && counts.ofUser(principal) >= perUser) {
				throw new GatewayError("RATE_LIMITED", `Too many live connections: at most ${perUser} per user (its logins and API keys together) on this node (LIVE_CONNECTIONS_PER_USER)`, { retry_after: 1 });
			}
		},

		streamConnect(this: EventStreamThis, subscriber: Subscriber, credential: string): boolean {
			// streamAdmit ran at the handshake; connections admitted at the same moment may still overshoot.
			try {
				this.streamAdmit(subscriber.principal);
			} catch (err) {
				subscriber.close({ code: (err as GatewayError).type === "UNAVAILABLE" ? "UNAVAILABLE" : "RATE_LIMITED", message: (err as Error).message });
				return false;
			}
			this.hub.connect(subscriber);
			connectionCountsOf(this.broker).add(subscriber.id, subscriber.principal);
			this.credentials.set(subscriber.id, credential);
			// A revocation heard while this credential was being resolved found no connection to close yet.
			const since = Date.now() - RECENT_CHANGE_MS;
			if (this.recentAuthChanges.some((r) => r.at >= since && affects(r.change, subscriber.principal))) this.revalidateSoon([subscriber]);
			const expiresAt = subscriber.principal.expires_at;
			if (expiresAt !== undefined) {
				// setTimeout holds 24.8 days at most; tokens live 15 minutes, keys may live longer.
				const timer = setTimeout(() => void this.revalidate([subscriber]), Math.min(Math.max(0, expiresAt - Date.now()) + 10, 2 ** 31 - 1));
				timer.unref();
				this.expiryTimers.set(subscriber.id, timer);
			}
			return true;
		},

		streamDisconnect(this: EventStreamThis, subscriberId: string) {
			this.hub.disconnect(subscriberId);
			connectionCountsOf(this.broker).remove(subscriberId);
			this.credentials.delete(subscriberId);
			clearTimeout(this.expiryTimers.get(subscriberId));
			this.expiryTimers.delete(subscriberId);
		},

		async streamSubscribe(this: EventStreamThis, subscriber: Subscriber, topic: Topic, sinceSeq?: number, authorized?: () => void): Promise<void> {
			const { principal } = subscriber;
			const checkedFrom = Date.now();
			if (!hasPermission(principal, "messages:read")) throw fail.forbidden("Missing permission messages:read");
			// Each subscription costs memory and a share of every dispatch: checked before the lookups, and again where it is added.
			const maxSubscriptions = this.runtime.config.subscriptionsPerConnection;
			if (!this.hub.hasRoomFor(subscriber.id, topic, maxSubscriptions)) throw tooManySubscriptions(maxSubscriptions);
			const { db } = this.runtime;
			const replay: ReplayParams = { after_seq: 0, limit: REPLAY_PAGE };
			let nothingToReplay = false;
			if (topic.kind === "chat") {
				if (!(await db.models.Chat.findByPk(topic.id, { attributes: ["id"] }))) throw fail.notFound("Chat");
				const allowed = await callAs<boolean>(this, principal, "auth.can", { chat_id: topic.id, right: "can_read" satisfies Right });
				if (!allowed) throw fail.forbidden(`Needs can_read on chat ${topic.id}`);
				replay.chat_id = topic.id;
			} else {
				const botId = topic.kind === "bot" ? topic.id : topic.botId;
				// Only a principal that may list bots learns whether one exists (GetBot answers the others
				// FORBIDDEN): for the rest, an unknown bot is one with no chat they can read.
				if (botId !== undefined && hasPermission(principal, "bots:read") && !(await db.models.Bot.findByPk(botId, { attributes: ["id"] }))) throw fail.notFound("Bot");
				const access = await callAs<{ all: boolean; chat_ids: number[] }>(this, principal, "auth.chatAccess", { right: "can_read" });
				this.hub.setAccess(subscriber.id, { all: access.all, chats: new Set(access.chat_ids) });
				if (botId !== undefined) replay.bot_id = botId;
				if (!access.all) {
					// The log filters by the principal's grants itself: they may be far too many to send as a list.
					nothingToReplay = access.chat_ids.length === 0;
					replay.reader = readerOf(principal);
					// For a broker node of an earlier version during a rolling upgrade, which ignores `reader`
					// (and used to get at most this many): without them it would page through every event.
					replay.chat_ids = access.chat_ids.slice(0, REPLAY_CHAT_IDS_MAX);
				}
			}
			if (!(await this.feed.whenStarted(FEED_WAIT_MS))) throw fail.unavailable("The live event feed");
			if (sinceSeq !== undefined && sinceSeq > this.feed.position) {
				// This node's feed may trail the log by what is on its way; past the log's head, the
				// subscription would silently skip every live event up to that seq.
				const { seq: head } = await this.broker.call<{ seq: number }>("broker.head");
				// The head says how busy every tenant's bots are: named to admins only.
				const newest = subscriber.principal.is_admin ? `: the newest is ${head}` : "";
				if (sinceSeq > head) throw fail.validation([{ field: "since_seq", message: `No event has this seq yet${newest}.` }]);
			}
			// Confirmed and added in one turn: nothing (a live event, the connection's next request) comes between.
			if (!this.hub.hasRoomFor(subscriber.id, topic, maxSubscriptions)) throw tooManySubscriptions(maxSubscriptions);
			authorized?.();
			const subscribed = this.hub.subscribe(subscriber, topic, {
				livePosition: this.feed.position,
				sinceSeq,
				replay: async (afterSeq, deliver) => {
					if (nothingToReplay) return;
					let after = afterSeq;
					const turnKey = principalKey(subscriber.principal);
					for (;;) {
						const release = await this.replayTurns.acquire(undefined, turnKey);
						let page: GatewayEvent[];
						let delivered: boolean;
						try {
							page = await this.broker.call<GatewayEvent[], ReplayParams>("broker.replay", { ...replay, after_seq: after });
							delivered = page.length > 0 && deliver(page);
						} finally {
							release();
						}
						if (!delivered) return;
						// Live events and other requests get the loop between pages.
						await new Promise((resolve) => setImmediate(resolve));
						await subscriber.drained?.();
						after = page[page.length - 1]!.seq;
						if (page.length < REPLAY_PAGE) return;
					}
				},
			});
			// A grant or key revoked while this subscription was being checked found it not in the hub
			// yet (its re-check passed it by): check it again now.
			const since = Date.now() - RECENT_CHANGE_MS;
			if (checkedFrom < since || this.recentAuthChanges.some((r) => r.at >= checkedFrom && affects(r.change, principal))) this.revalidateSoon([subscriber]);
			await subscribed;
		},

		streamUnsubscribe(this: EventStreamThis, subscriberId: string, topic: Topic): boolean {
			return this.hub.unsubscribe(subscriberId, topic);
		},

		/**
		 * Resolves the subscribers' credentials afresh and re-checks their subscriptions: one
		 * auth.resolve and one auth.chatAccess per distinct credential, however many sockets share it.
		 */
		async revalidate(this: EventStreamThis, subscribers: Subscriber[]): Promise<void> {
			const byCredential = new Map<string, Subscriber[]>();
			for (const subscriber of subscribers) {
				const credential = this.credentials.get(subscriber.id);
				if (credential === undefined) continue;
				// Appended in place: a copy per subscriber made 20,000 sockets of one credential cost 2.5 s.
				const group = byCredential.get(credential);
				if (group) group.push(subscriber);
				else byCredential.set(credential, [subscriber]);
			}
			for (const [credential, group] of byCredential) {
				await this.revalidateGroup(credential, group);
				await new Promise((resolve) => setImmediate(resolve)); // let live traffic through between groups
			}
		},

		revalidateSoon(this: EventStreamThis, subscribers: Subscriber[]) {
			for (const delay of RECHECK_AFTER_MS) setTimeout(() => void this.revalidate(subscribers), delay).unref();
		},

		async revalidateGroup(this: EventStreamThis, credential: string, group: Subscriber[]): Promise<void> {
			let principal: Principal;
			try {
				principal = await this.resolveCredential(credential);
			} catch (err) {
				const { status, body } = toApiError(err);
				if (status === 401 || status === 403) {
					for (const subscriber of group) {
						this.streamDisconnect(subscriber.id);
						subscriber.close({ code: "UNAUTHORIZED", message: body.error.message });
					}
				}
				return; // auth is unreachable: keep the connections, try again later
			}
			// Without messages:read a connection may stay (the handshake admits it) but holds no subscription:
			// closing it on an unrelated change (a grant, another key's revocation) left the client guessing.
			const mayRead = hasPermission(principal, "messages:read");
			let access: { all: boolean; chat_ids: number[] } = { all: false, chat_ids: [] };
			try {
				if (mayRead) access = await callAs(this, principal, "auth.chatAccess", { right: "can_read" });
			} catch (err) {
				this.logger.warn("Could not re-check live subscriptions:", (err as Error).message);
				return;
			}
			const readable = { all: access.all, chats: new Set(access.chat_ids) };
			for (const [index, subscriber] of group.entries()) {
				// Thousands of sockets may share a credential: let live traffic through now and then.
				if (index > 0 && index % 500 === 0) await new Promise((resolve) => setImmediate(resolve));
				subscriber.principal = principal;
				for (const topic of this.hub.topicsOf(subscriber.id)) {
					if (!mayRead) {
						this.hub.unsubscribe(subscriber.id, topic);
						subscriber.revoked(topic, { code: "FORBIDDEN", message: "Missing permission messages:read" });
					} else if (topic.kind !== "chat") this.hub.setAccess(subscriber.id, readable);
					else if (!readable.all && !readable.chats.has(topic.id)) {
						this.hub.unsubscribe(subscriber.id, topic);
						subscriber.revoked(topic, { code: "FORBIDDEN", message: `can_read on chat ${topic.id} was revoked` });
					}
				}
			}
		},
	},

	created(this: EventStreamThis) {
		this.runtime = runtimeOf(this.broker);
		this.hub = new SubscriptionHub();
		this.replayTurns = new Slots(REPLAY_PAGES_AT_ONCE);
		this.credentials = new Map();
		this.expiryTimers = new Map();
		this.recentAuthChanges = [];
		this.feedOutage = new OutageNotice(this.logger);
		this.revalidateEveryone = skipWhileRunning(
			() => this.revalidate(this.hub.list()),
			(ms) => this.logger.warn(`Re-checking live connections has run ${ms} ms, past its ${REVALIDATE_EVERY_MS} ms period: the next passes wait for it`),
		);
		// The feed asks every second (every 250 ms until it joins): with no node running broker, asking
		// Moleculer would log a warning per call.
		const readLog = async <T>(action: string, params: object): Promise<T> => {
			if (!isActionReachable(this.broker, action)) throw new GatewayError("UNAVAILABLE", "no node runs the broker service");
			const result = await this.broker.call<T, object>(action, params);
			this.feedOutage.recovered("Event feed reads the event log again: live events flow");
			return result;
		};
		this.feed = new EventFeed(
			{
				range: (afterSeq, untilSeq, limit) => readLog<GatewayEvent[]>("broker.replay", { after_seq: afterSeq, ...(untilSeq !== undefined ? { until_seq: untilSeq } : {}), limit } satisfies ReplayParams),
				head: async () => (await readLog<{ seq: number }>("broker.head", {})).seq,
			},
			(events) => this.hub.dispatch(events),
			{ onError: (err) => this.feedOutage.failed(`Event feed could not read the event log: ${(err as Error).message}`) },
		);
	},

	async started(this: EventStreamThis) {
		// In a cluster the log's readers may start after this node: join the feed when they answer.
		// (Embedded, the local broker service is still starting for a moment: not worth a warning.)
		const joining = Date.now();
		const join = async (): Promise<void> => {
			try {
				await this.feed.start();
			} catch (err) {
				if (Date.now() - joining >= FEED_JOIN_QUIET_MS) this.feedOutage.failed(`Event feed waits to join the event log (no live events until then): ${(err as Error).message}`);
				this.feedJoinTimer = setTimeout(() => void join(), 250);
				this.feedJoinTimer.unref();
			}
		};
		void join();
		this.revalidateTimer = setInterval(() => void this.revalidateEveryone(), REVALIDATE_EVERY_MS);
		this.revalidateTimer.unref();
		metricsOf(this.broker).sample("live_connections", this.name, () => {
			const { socketio, websocket, grpc_streams } = streamStats(this.hub.list().map((s) => s.id), 0);
			return { socketio, websocket, grpc: grpc_streams };
		});
	},

	stopped(this: EventStreamThis) {
		metricsOf(this.broker).withdraw("live_connections", this.name);
		clearInterval(this.revalidateTimer);
		clearTimeout(this.feedJoinTimer); // a stopped service must not join the log after all
		for (const timer of this.expiryTimers.values()) clearTimeout(timer);
		this.feed.stop();
	},
};
