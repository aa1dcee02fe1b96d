/**
 * Who receives which live event on this node. A subscriber is one connection (a socket.io socket, a
 * WebSocket, a gRPC stream) acting for one principal; it subscribes to topics: a chat, a bot, or
 * every chat it may read. The hub fans each event of the feed out to the subscriptions it matches
 * and the principal may read, replays the log after a seq before going live (no gap, no duplicate
 * at the seam), and closes subscribers that cannot keep up.
 */
import type { GatewayEvent } from "../../services/broker/event-log";
import type { Principal } from "../../services/auth/principal";

export type Topic = { kind: "chat"; id: number } | { kind: "bot"; id: number } | { kind: "all"; botId?: number };

export interface CloseReason {
	code: "UNAUTHORIZED" | "FORBIDDEN" | "RATE_LIMITED" | "UNAVAILABLE";
	message: string;
}

/** Why a client that stopped reading is closed (the hub's buffer cap, or an endpoint's for its replies). */
const TOO_SLOW: CloseReason = { code: "RATE_LIMITED", message: "The client reads too slowly: its buffer is full" };

export interface Subscriber {
	readonly id: string;
	principal: Principal;
	/** Sends one event; false when the consumer's buffer is over its cap (it gets closed). */
	send(event: GatewayEvent): boolean;
	/** A subscription was withdrawn (its grant was revoked): tell the client. */
	revoked(topic: Topic, reason: CloseReason): void;
	/** Ends the connection. */
	close(reason: CloseReason): void;
	/**
	 * Resolves once the client has taken most of what was sent: a replay waits on it between pages,
	 * so a long replay to a slow link is paced instead of tripping the buffer cap.
	 */
	drained?(): Promise<void>;
}

/** Polls `isDrained` until true or `timeoutMs` passes (then the buffer cap decides). */
export async function waitUntil(isDrained: () => boolean, timeoutMs = 30_000): Promise<void> {
	const deadline = Date.now() + timeoutMs;
	while (!isDrained() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
}

/** What the principal may read: every chat (admins), or these chats. */
export interface ReadAccess {
	all: boolean;
	chats: Set<number>;
}

interface Subscription {
	subscriber: Subscriber;
	topic: Topic;
	replaying: boolean;
	/** Live events that arrived while the log was being replayed. */
	held: GatewayEvent[];
	/** The last seq this subscription delivered. */
	lastSeq: number;
}

export const topicKey = (topic: Topic) => (topic.kind === "all" ? `all:${topic.botId ?? "*"}` : `${topic.kind}:${topic.id}`);

/** Held live events per replaying subscription before the client counts as too slow. */
const MAX_HELD = 10_000;

export class SubscriptionHub {
	private readonly byChat = new Map<number, Set<Subscription>>();
	private readonly byBot = new Map<number, Set<Subscription>>();
	private readonly everything = new Set<Subscription>();
	private readonly bySubscriber = new Map<string, Map<string, Subscription>>();
	private readonly subscribers = new Map<string, Subscriber>();
	/** Read access per subscriber, for bot and all-chats topics (chat topics were checked once). */
	private readonly access = new Map<string, ReadAccess>();

	get connectionCount(): number {
		return this.subscribers.size;
	}

	get subscriptionCount(): number {
		let n = 0;
		for (const subs of this.bySubscriber.values()) n += subs.size;
		return n;
	}

	connect(subscriber: Subscriber): void {
		this.subscribers.set(subscriber.id, subscriber);
		this.bySubscriber.set(subscriber.id, new Map());
	}

	/** Forgets a subscriber and everything it subscribed to (the connection is gone). */
	disconnect(subscriberId: string): void {
		for (const sub of this.bySubscriber.get(subscriberId)?.values() ?? []) this.detach(sub);
		this.bySubscriber.delete(subscriberId);
		this.subscribers.delete(subscriberId);
		this.access.delete(subscriberId);
	}

	list(): Subscriber[] {
		return [...this.subscribers.values()];
	}

	topicsOf(subscriberId: string): Topic[] {
		return [...(this.bySubscriber.get(subscriberId)?.values() ?? [])].map((s) => s.topic);
	}

	has(subscriberId: string, topic: Topic): boolean {
		return this.bySubscriber.get(subscriberId)?.has(topicKey(topic)) ?? false;
	}

	/** Whether the subscriber may take `topic` with at most `max` subscriptions: subscribing again to one it holds replaces it. */
	hasRoomFor(subscriberId: string, topic: Topic, max: number): boolean {
		const own = this.bySubscriber.get(subscriberId);
		return !own || own.has(topicKey(topic)) || own.size < max;
	}

	/** For a connected subscriber only: access looked up while it went away would stay for good. */
	setAccess(subscriberId: string, access: ReadAccess): void {
		if (this.subscribers.has(subscriberId)) this.access.set(subscriberId, access);
	}

	/**
	 * Adds a subscription. With `replay`, live events are held back while `replay` reads the log
	 * after `sinceSeq` (through `deliver`), then the held ones after the last replayed seq follow.
	 * Without it, the subscription is live from `livePosition`. The subscription is in place when
	 * the call returns (the promise then settles when the replay is over): the endpoints rely on it
	 * to handle a connection's next request against it without waiting for the replay.
	 */
	async subscribe(
		subscriber: Subscriber,
		topic: Topic,
		options: { livePosition: number; sinceSeq?: number; replay?: (afterSeq: number, deliver: (events: GatewayEvent[]) => boolean) => Promise<void> },
	): Promise<void> {
		const own = this.bySubscriber.get(subscriber.id);
		if (!own) throw new Error("subscriber is not connected");
		const key = topicKey(topic);
		const existing = own.get(key);
		if (existing) this.detach(existing);
		const replaying = options.sinceSeq !== undefined && options.replay !== undefined;
		const sub: Subscription = { subscriber, topic, replaying, held: [], lastSeq: replaying ? options.sinceSeq! : options.livePosition };
		own.set(key, sub);
		this.attach(sub);
		if (!replaying) return;
		try {
			await options.replay!(options.sinceSeq!, (events) => {
				// Unsubscribed (or revoked, or disconnected) meanwhile: the rest of the replay is not its.
				if (own.get(key) !== sub || !this.subscribers.has(subscriber.id)) return false;
				for (const event of events) {
					if (event.seq <= sub.lastSeq) continue;
					if (!this.visible(sub, event)) {
						sub.lastSeq = event.seq;
						continue;
					}
					if (!subscriber.send(event)) {
						this.tooSlow(subscriber);
						return false;
					}
					sub.lastSeq = event.seq;
				}
				return true;
			});
		} catch (err) {
			// Unsubscribed or subscribed again meanwhile: that newer state stands, and nothing failed for it.
			if (own.get(key) !== sub) return;
			this.unsubscribe(subscriber.id, topic);
			throw err;
		}
		if (!this.subscribers.has(subscriber.id) || own.get(key) !== sub) return; // gone while replaying
		// The seam: whatever the feed delivered meanwhile, strictly after what the log gave.
		sub.replaying = false;
		const held = sub.held;
		sub.held = [];
		for (const event of held) this.offer(sub, event);
	}

	unsubscribe(subscriberId: string, topic: Topic): boolean {
		const own = this.bySubscriber.get(subscriberId);
		const sub = own?.get(topicKey(topic));
		if (!sub) return false;
		own!.delete(topicKey(topic));
		this.detach(sub);
		return true;
	}

	/**
	 * The feed's events, in seq order. A connection whose topics overlap (a chat and its bot) gets
	 * each live event once: the first of its live subscriptions that may show it sends it, and its
	 * replaying ones do not hold it for later.
	 */
	dispatch(events: GatewayEvent[]): void {
		for (const event of events) {
			const targets: Subscription[] = [];
			if (event.chat_id !== null) for (const sub of this.byChat.get(event.chat_id) ?? []) targets.push(sub);
			for (const sub of this.byBot.get(event.bot_id) ?? []) targets.push(sub);
			for (const sub of this.everything) targets.push(sub);
			const reached = new Set<string>();
			for (const sub of targets) {
				if (!sub.replaying && !reached.has(sub.subscriber.id) && this.offer(sub, event)) reached.add(sub.subscriber.id);
			}
			for (const sub of targets) {
				if (!sub.replaying || reached.has(sub.subscriber.id)) continue;
				if (sub.held.length >= MAX_HELD) this.tooSlow(sub.subscriber);
				else sub.held.push(event);
			}
		}
	}

	/** Sends the event if this subscription shows it; true when it went to the subscriber (or closed it). */
	private offer(sub: Subscription, event: GatewayEvent): boolean {
		if (event.seq <= sub.lastSeq || !this.visible(sub, event)) return false;
		sub.lastSeq = event.seq;
		if (!sub.subscriber.send(event)) this.tooSlow(sub.subscriber);
		return true;
	}

	/** Chat topics were authorised when subscribed; bot and all-chats topics filter per chat. */
	private visible(sub: Subscription, event: GatewayEvent): boolean {
		const { topic } = sub;
		if (topic.kind === "chat") return event.chat_id === topic.id;
		if (topic.kind === "bot" && event.bot_id !== topic.id) return false;
		if (topic.kind === "all" && topic.botId !== undefined && event.bot_id !== topic.botId) return false;
		const access = this.access.get(sub.subscriber.id);
		if (!access) return false;
		if (access.all) return true;
		return event.chat_id !== null && access.chats.has(event.chat_id);
	}

	/** Forgets a client that stopped reading (or, with its reason, one that asks faster than it is answered) and closes it. */
	tooSlow(subscriber: Subscriber, reason: CloseReason = TOO_SLOW): void {
		this.disconnect(subscriber.id);
		subscriber.close(reason);
	}

	private attach(sub: Subscription): void {
		const { topic } = sub;
		if (topic.kind === "chat") add(this.byChat, topic.id, sub);
		else if (topic.kind === "bot") add(this.byBot, topic.id, sub);
		else this.everything.add(sub);
	}

	private detach(sub: Subscription): void {
		const { topic } = sub;
		if (topic.kind === "chat") remove(this.byChat, topic.id, sub);
		else if (topic.kind === "bot") remove(this.byBot, topic.id, sub);
		else this.everything.delete(sub);
	}
}

function add(map: Map<number, Set<Subscription>>, key: number, sub: Subscription): void {
	let set = map.get(key);
	if (!set) map.set(key, (set = new Set()));
	set.add(sub);
}

function remove(map: Map<number, Set<Subscription>>, key: number, sub: Subscription): void {
	const set = map.get(key);
	if (!set) return;
	set.delete(sub);
	if (set.size === 0) map.delete(key);
}
