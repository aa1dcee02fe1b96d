/**
 * SubscriptionHub without a broker: which subscription gets which event (chat, bot, all chats, with
 * ReadAccess), the replay-then-live seam (events dispatched while the log is replayed, some of them
 * replayed too), and the end of delivery: a full buffer (RATE_LIMITED), unsubscribe, disconnect,
 * and more than 10,000 events held during a replay.
 */
import type { GatewayEvent } from "../../services/broker/event-log";
import type { Principal } from "../../services/auth/principal";
import { SubscriptionHub, type CloseReason, type Subscriber, type Topic } from "../../mixins/event-stream/subscription-hub";

const principal: Principal = { type: "user", id: 7, user_id: 7, roles: ["viewer"], permissions: ["messages:read"], rate_limit: 100, is_admin: false };

function ev(seq: number, chat_id: number | null = 1, bot_id = 1): GatewayEvent {
	return { type: chat_id === null ? "update" : "new_message", seq, bot_id, chat_id, created_at: new Date(0).toISOString() };
}

interface FakeSubscriber extends Subscriber {
	sent: GatewayEvent[];
	closed: CloseReason[];
	/** send() answers false (buffer over its cap) from this many sends on. */
	fullAfter: number;
}

let counter = 0;
function subscriber(fullAfter = Infinity): FakeSubscriber {
	counter += 1;
	const sub: FakeSubscriber = {
		id: `test:${counter}`,
		principal,
		sent: [],
		closed: [],
		fullAfter,
		send(event) {
			sub.sent.push(event);
			return sub.sent.length < sub.fullAfter;
		},
		revoked: () => undefined,
		close(reason) {
			sub.closed.push(reason);
		},
	};
	return sub;
}

const seqs = (s: FakeSubscriber) => s.sent.map((e) => e.seq);
const chatTopic = (id: number): Topic => ({ kind: "chat", id });

/** A controllable point inside a replay: the test runs `between` while the replay waits. */
function deferred() {
	let resolve!: () => void;
	const promise = new Promise<void>((r) => (resolve = r));
	return { promise, resolve };
}

describe("SubscriptionHub: who gets what", () => {
	let hub: SubscriptionHub;
	beforeEach(() => (hub = new SubscriptionHub()));

	it("a chat topic gets only its chat's events, from the live position on", async () => {
		const s = subscriber();
		hub.connect(s);
		await hub.subscribe(s, chatTopic(1), { livePosition: 2 });
		hub.dispatch([ev(1), ev(2), ev(3), ev(4, 2), ev(5, null), ev(6, 1, 2), ev(7)]);
		expect(seqs(s)).toEqual([3, 6, 7]);
	});

	it("a bot topic with access to all chats gets every event of that bot, chat-less ones too", async () => {
		const s = subscriber();
		hub.connect(s);
		hub.setAccess(s.id, { all: true, chats: new Set() });
		await hub.subscribe(s, { kind: "bot", id: 1 }, { livePosition: 0 });
		hub.dispatch([ev(1, 1), ev(2, 2), ev(3, null), ev(4, 3, 2), ev(5, null, 2)]);
		expect(seqs(s)).toEqual([1, 2, 3]);
	});

	it("access looked up for a subscriber that went away meanwhile is not kept (nor applies if its id came back)", async () => {
		const s = subscriber();
		hub.connect(s);
		hub.disconnect(s.id);
		hub.setAccess(s.id, { all: true, chats: new Set() });
		hub.connect(s);
		await hub.subscribe(s, { kind: "bot", id: 1 }, { livePosition: 0 });
		hub.dispatch([ev(1, 1), ev(2, null)]);
		expect(seqs(s)).toEqual([]);
	});

	it("a bot topic with access to a set of chats gets only those chats, and no chat-less event", async () => {
		const s = subscriber();
		hub.connect(s);
		hub.setAccess(s.id, { all: false, chats: new Set([2]) });
		await hub.subscribe(s, { kind: "bot", id: 1 }, { livePosition: 0 });
		hub.dispatch([ev(1, 1), ev(2, 2), ev(3, null), ev(4, 2, 2)]);
		expect(seqs(s)).toEqual([2]);
		hub.setAccess(s.id, { all: false, chats: new Set([1]) }); // a grant moved: the next events follow it
		hub.dispatch([ev(5, 1), ev(6, 2)]);
		expect(seqs(s)).toEqual([2, 5]);
	});

	it("a bot topic without any ReadAccess gets nothing", async () => {
		const s = subscriber();
		hub.connect(s);
		await hub.subscribe(s, { kind: "bot", id: 1 }, { livePosition: 0 });
		hub.dispatch([ev(1, 1), ev(2, null)]);
		expect(seqs(s)).toEqual([]);
	});

	it("an all-chats topic with a botId keeps to that bot; without one it spans the bots", async () => {
		const one = subscriber();
		const every = subscriber();
		for (const s of [one, every]) {
			hub.connect(s);
			hub.setAccess(s.id, { all: false, chats: new Set([1, 3]) });
		}
		await hub.subscribe(one, { kind: "all", botId: 1 }, { livePosition: 0 });
		await hub.subscribe(every, { kind: "all" }, { livePosition: 0 });
		hub.dispatch([ev(1, 1, 1), ev(2, 2, 1), ev(3, 3, 2), ev(4, null, 1)]);
		expect(seqs(one)).toEqual([1]);
		expect(seqs(every)).toEqual([1, 3]);
	});

	it("subscribing to the same topic again replaces the subscription: one copy of each event", async () => {
		const s = subscriber();
		hub.connect(s);
		await hub.subscribe(s, chatTopic(1), { livePosition: 0 });
		await hub.subscribe(s, chatTopic(1), { livePosition: 0 });
		hub.dispatch([ev(1)]);
		expect(seqs(s)).toEqual([1]);
		expect(hub.subscriptionCount).toBe(1);
	});

	it("refuses a subscriber that is not connected", async () => {
		await expect(hub.subscribe(subscriber(), chatTopic(1), { livePosition: 0 })).rejects.toThrow(/not connected/);
	});
});

describe("SubscriptionHub: replay, then live", () => {
	let hub: SubscriptionHub;
	beforeEach(() => (hub = new SubscriptionHub()));

	/** A log of `count` events, chat 1 on odd seqs and chat 2 on even ones; pages of `page`. */
	function replayer(
		log: GatewayEvent[],
		page: number,
		between: (pageIndex: number) => Promise<void> | void,
		filter = (e: GatewayEvent) => e.chat_id === 1,
		replayed: number[] = [],
	) {
		return async (afterSeq: number, deliver: (events: GatewayEvent[]) => boolean) => {
			for (let index = 0, after = afterSeq; ; index += 1) {
				const rows = log.filter((e) => e.seq > after && filter(e)).slice(0, page);
				replayed.push(...rows.map((e) => e.seq));
				if (rows.length === 0 || !deliver(rows)) return;
				after = rows[rows.length - 1]!.seq;
				await between(index);
				if (rows.length < page) return;
			}
		};
	}

	it("replays after since_seq, holds what the feed dispatches meanwhile, and joins them with no gap and no duplicate", async () => {
		const s = subscriber();
		hub.connect(s);
		const log = Array.from({ length: 12 }, (_, i) => ev(i + 1, 1));
		log.push(ev(13, 2));
		const replayed: number[] = [];
		const replay = replayer(log, 3, (page) => {
			expect(seqs(s)).toEqual(replayed); // nothing live before the replay ended
			if (page === 0) hub.dispatch([ev(7), ev(8), ev(13, 2)]); // also replayed later
			if (page === 1) hub.dispatch([ev(9), ev(10), ev(11)]);
			if (page === 2) {
				log.push(ev(14), ev(15, 2));
				hub.dispatch([ev(12), ev(14), ev(15, 2)]); // 14 reaches the log after the replay read it
			}
			if (page === 3) {
				log.push(ev(16));
				hub.dispatch([ev(16)]);
			}
		}, undefined, replayed);
		// The feed had delivered up to 6 when the client subscribed with since_seq 2.
		await hub.subscribe(s, chatTopic(1), { livePosition: 6, sinceSeq: 2, replay });
		hub.dispatch([ev(16), ev(17), ev(18, 2), ev(19)]);
		expect(seqs(s)).toEqual([3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 14, 16, 17, 19]);
		expect(s.closed).toEqual([]);
	});

	it("sends nothing live before the replay has ended", async () => {
		const s = subscriber();
		hub.connect(s);
		const gate = deferred();
		const log = [ev(1), ev(2)];
		const subscribed = hub.subscribe(s, chatTopic(1), {
			livePosition: 2,
			sinceSeq: 0,
			replay: async (_after, deliver) => {
				deliver([log[0]!]);
				await gate.promise;
				deliver([log[1]!]);
			},
		});
		hub.dispatch([ev(3), ev(4)]);
		expect(seqs(s)).toEqual([1]);
		gate.resolve();
		await subscribed;
		expect(seqs(s)).toEqual([1, 2, 3, 4]);
	});

	it("replays a bot topic through the subscriber's ReadAccess", async () => {
		const s = subscriber();
		hub.connect(s);
		hub.setAccess(s.id, { all: false, chats: new Set([1]) });
		const log = [ev(1, 1), ev(2, 2), ev(3, null), ev(4, 1)];
		await hub.subscribe(s, { kind: "bot", id: 1 }, { livePosition: 4, sinceSeq: 0, replay: replayer(log, 10, () => undefined, () => true) });
		hub.dispatch([ev(5, 2), ev(6, 1)]);
		expect(seqs(s)).toEqual([1, 4, 6]);
	});

	it("a replay that fails removes the subscription and rethrows", async () => {
		const s = subscriber();
		hub.connect(s);
		const failing = async () => {
			throw new Error("log away");
		};
		await expect(hub.subscribe(s, chatTopic(1), { livePosition: 0, sinceSeq: 0, replay: failing })).rejects.toThrow("log away");
		expect(hub.has(s.id, chatTopic(1))).toBe(false);
		hub.dispatch([ev(1)]);
		expect(seqs(s)).toEqual([]);
	});
});

describe("SubscriptionHub: the end of delivery", () => {
	let hub: SubscriptionHub;
	beforeEach(() => (hub = new SubscriptionHub()));

	it("send() answering false closes the subscriber with RATE_LIMITED and removes it", async () => {
		const s = subscriber(2);
		const other = subscriber();
		for (const x of [s, other]) {
			hub.connect(x);
			await hub.subscribe(x, chatTopic(1), { livePosition: 0 });
		}
		hub.dispatch([ev(1), ev(2), ev(3)]);
		hub.dispatch([ev(4)]);
		expect(seqs(s)).toEqual([1, 2]);
		expect(s.closed).toEqual([{ code: "RATE_LIMITED", message: expect.any(String) }]);
		expect(hub.list().map((x) => x.id)).toEqual([other.id]);
		expect(hub.connectionCount).toBe(1);
		expect(hub.subscriptionCount).toBe(1);
		expect(seqs(other)).toEqual([1, 2, 3, 4]);
	});

	it("send() answering false during a replay closes the subscriber and ends the replay", async () => {
		const s = subscriber(2);
		hub.connect(s);
		const answers: boolean[] = [];
		await hub.subscribe(s, chatTopic(1), {
			livePosition: 0,
			sinceSeq: 0,
			replay: async (_after, deliver) => {
				answers.push(deliver([ev(1), ev(2), ev(3)]));
			},
		});
		expect(answers).toEqual([false]);
		expect(seqs(s)).toEqual([1, 2]);
		expect(s.closed.map((r) => r.code)).toEqual(["RATE_LIMITED"]);
		expect(hub.connectionCount).toBe(0);
	});

	it("unsubscribe and disconnect stop live delivery", async () => {
		const a = subscriber();
		const b = subscriber();
		for (const x of [a, b]) {
			hub.connect(x);
			await hub.subscribe(x, chatTopic(1), { livePosition: 0 });
		}
		hub.dispatch([ev(1)]);
		expect(hub.unsubscribe(a.id, chatTopic(1))).toBe(true);
		expect(hub.unsubscribe(a.id, chatTopic(1))).toBe(false);
		hub.disconnect(b.id);
		hub.dispatch([ev(2)]);
		expect([seqs(a), seqs(b)]).toEqual([[1], [1]]);
		expect(hub.connectionCount).toBe(1);
		expect(hub.subscriptionCount).toBe(0);
		expect(a.closed).toEqual([]);
	});

	it("unsubscribe during a replay stops it: neither the rest of the replay nor the held live events are sent", async () => {
		const s = subscriber();
		hub.connect(s);
		const gate = deferred();
		const subscribed = hub.subscribe(s, chatTopic(1), {
			livePosition: 2,
			sinceSeq: 0,
			replay: async (_after, deliver) => {
				deliver([ev(1)]);
				await gate.promise;
				deliver([ev(2)]);
			},
		});
		hub.dispatch([ev(3)]); // held
		hub.unsubscribe(s.id, chatTopic(1)); // e.g. its grant was revoked meanwhile
		gate.resolve();
		await subscribed;
		hub.dispatch([ev(4)]);
		expect(seqs(s)).toEqual([1]);
	});

	it("disconnect during a replay stops it: nothing more is sent", async () => {
		const s = subscriber();
		hub.connect(s);
		const gate = deferred();
		const subscribed = hub.subscribe(s, chatTopic(1), {
			livePosition: 2,
			sinceSeq: 0,
			replay: async (_after, deliver) => {
				deliver([ev(1)]);
				await gate.promise;
				deliver([ev(2)]);
			},
		});
		hub.dispatch([ev(3)]);
		hub.disconnect(s.id);
		gate.resolve();
		await subscribed;
		expect(seqs(s)).toEqual([1]);
	});

	it("holds up to 10,000 live events during a replay, and delivers them in order after it", async () => {
		const s = subscriber();
		hub.connect(s);
		const gate = deferred();
		const subscribed = hub.subscribe(s, chatTopic(1), { livePosition: 0, sinceSeq: 0, replay: () => gate.promise });
		hub.dispatch(Array.from({ length: 10_000 }, (_, i) => ev(i + 1)));
		expect(s.closed).toEqual([]);
		gate.resolve();
		await subscribed;
		expect(seqs(s)).toHaveLength(10_000);
		expect(seqs(s)[9_999]).toBe(10_000);
	});

	it("more than 10,000 events held during a replay close the subscriber with RATE_LIMITED", async () => {
		const s = subscriber();
		const calm = subscriber();
		for (const x of [s, calm]) hub.connect(x);
		await hub.subscribe(calm, chatTopic(1), { livePosition: 0 });
		const gate = deferred();
		const subscribed = hub.subscribe(s, chatTopic(1), { livePosition: 0, sinceSeq: 0, replay: () => gate.promise });
		hub.dispatch(Array.from({ length: 10_000 }, (_, i) => ev(i + 1)));
		hub.dispatch([ev(10_001), ev(10_002)]);
		expect(s.closed.map((r) => r.code)).toEqual(["RATE_LIMITED"]);
		expect(hub.list().map((x) => x.id)).toEqual([calm.id]);
		gate.resolve();
		await subscribed;
		hub.dispatch([ev(10_003)]);
		expect(seqs(s)).toEqual([]);
		expect(s.closed).toHaveLength(1);
		expect(seqs(calm)).toHaveLength(10_003);
	});
});

describe("SubscriptionHub: room for one more subscription", () => {
	it("has room below the cap, none at it, and always for a topic the subscriber holds (subscribing again replaces it)", async () => {
		const hub = new SubscriptionHub();
		const s = subscriber();
		hub.connect(s);
		await hub.subscribe(s, chatTopic(1), { livePosition: 0 });
		await hub.subscribe(s, { kind: "bot", id: 1 }, { livePosition: 0 });
		expect(hub.hasRoomFor(s.id, chatTopic(2), 3)).toBe(true);
		await hub.subscribe(s, chatTopic(2), { livePosition: 0 });
		expect(hub.hasRoomFor(s.id, chatTopic(3), 3)).toBe(false);
		expect(hub.hasRoomFor(s.id, { kind: "bot", id: 1 }, 3)).toBe(true);
		hub.unsubscribe(s.id, chatTopic(1));
		expect(hub.hasRoomFor(s.id, chatTopic(3), 3)).toBe(true);
		// Another connection counts its own.
		const other = subscriber();
		hub.connect(other);
		expect(hub.hasRoomFor(other.id, chatTopic(3), 1)).toBe(true);
	});
});
