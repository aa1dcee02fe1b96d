/**
 * Which webhook wants which event (services/delivery/matching.ts): scope all / bot / chat / reply,
 * event type filters, the owner's read access, and events older than the webhook (only replay asks
 * for those).
 */
import type { GatewayEvent } from "../../services/broker/event-log";
import { EVENT_TYPES, inScope, ownerMayRead, SCOPES, wants, type WebhookRule } from "../../services/delivery/matching";
import type { ReadAccess } from "../../mixins/event-stream/subscription-hub";

const CREATED = "2024-05-01T10:00:00.000Z";
const LATER = "2024-05-01T10:00:05.000Z";
const EARLIER = "2024-05-01T09:59:59.999Z";

function rule(fields: Partial<WebhookRule> = {}): WebhookRule {
	return { id: 1, scope: "all", bot_id: null, chat_ids: null, reply_to_message_id: null, event_types: null, after_seq: null, created_at: CREATED, ...fields };
}

function event(fields: Partial<GatewayEvent> & { replyTo?: number | null } = {}): GatewayEvent {
	const { replyTo, ...rest } = fields;
	return {
		type: "new_message",
		seq: 10,
		bot_id: 1,
		chat_id: 100,
		message: { id: 5, text: "hi", reply_to_message_id: replyTo ?? null },
		created_at: LATER,
		...rest,
	};
}

const everything: ReadAccess = { all: true, chats: new Set() };
const only = (...chats: number[]): ReadAccess => ({ all: false, chats: new Set(chats) });

describe("the vocabulary", () => {
	it("scopes and event types as API.md names them", () => {
		expect([...SCOPES]).toEqual(["all", "bot", "chat", "reply"]);
		expect([...EVENT_TYPES].sort()).toEqual(["edited_message", "new_message", "outgoing_message", "update"]);
	});
});

describe("inScope", () => {
	it("all: every event of every bot and chat, and events that name no chat", () => {
		for (const e of [event(), event({ bot_id: 2, chat_id: 200 }), event({ type: "update", chat_id: null, message: undefined, update: {} })]) {
			expect(inScope(rule(), e)).toBe(true);
		}
	});

	it("bot: only that bot's events", () => {
		const r = rule({ scope: "bot", bot_id: 1 });
		expect(inScope(r, event({ bot_id: 1 }))).toBe(true);
		expect(inScope(r, event({ bot_id: 1, chat_id: null, type: "update", message: undefined }))).toBe(true);
		expect(inScope(r, event({ bot_id: 2 }))).toBe(false);
	});

	it("chat: only the listed chats", () => {
		const r = rule({ scope: "chat", chat_ids: [100, 101] });
		expect(inScope(r, event({ chat_id: 100 }))).toBe(true);
		expect(inScope(r, event({ chat_id: 101 }))).toBe(true);
		expect(inScope(r, event({ chat_id: 102 }))).toBe(false);
		expect(inScope(r, event({ chat_id: null, type: "update", message: undefined }))).toBe(false);
	});

	it("reply: only replies to that message in the listed chats", () => {
		const r = rule({ scope: "reply", chat_ids: [100], reply_to_message_id: 77 });
		expect(inScope(r, event({ replyTo: 77 }))).toBe(true);
		expect(inScope(r, event({ replyTo: 78 }))).toBe(false);
		expect(inScope(r, event({ replyTo: null }))).toBe(false);
		expect(inScope(r, event({ replyTo: 77, chat_id: 101 }))).toBe(false);
		expect(inScope(r, event({ type: "update", message: undefined }))).toBe(false);
	});

	it("event_types: only the listed types, in every scope", () => {
		const types = ["edited_message", "outgoing_message"];
		for (const r of [rule({ event_types: types }), rule({ scope: "bot", bot_id: 1, event_types: types }), rule({ scope: "chat", chat_ids: [100], event_types: types })]) {
			expect(inScope(r, event({ type: "new_message" }))).toBe(false);
			expect(inScope(r, event({ type: "edited_message" }))).toBe(true);
			expect(inScope(r, event({ type: "outgoing_message" }))).toBe(true);
			expect(inScope(r, event({ type: "update", message: undefined }))).toBe(false);
		}
		expect(inScope(rule({ scope: "reply", chat_ids: [100], reply_to_message_id: 77, event_types: ["edited_message"] }), event({ type: "edited_message", replyTo: 77 }))).toBe(true);
		expect(inScope(rule({ scope: "reply", chat_ids: [100], reply_to_message_id: 77, event_types: ["edited_message"] }), event({ type: "new_message", replyTo: 77 }))).toBe(false);
	});

	it("no event_types (null): every type", () => {
		for (const type of EVENT_TYPES) expect(inScope(rule(), event({ type }))).toBe(true);
	});
});

describe("ownerMayRead", () => {
	it("an owner reading everything (admin) gets every event, chatless ones included", () => {
		expect(ownerMayRead(everything, event())).toBe(true);
		expect(ownerMayRead(everything, event({ chat_id: null }))).toBe(true);
	});

	it("an owner with grants gets only the chats it can read, and no chatless events", () => {
		expect(ownerMayRead(only(100), event({ chat_id: 100 }))).toBe(true);
		expect(ownerMayRead(only(100), event({ chat_id: 101 }))).toBe(false);
		expect(ownerMayRead(only(100), event({ chat_id: null }))).toBe(false);
		expect(ownerMayRead(only(), event())).toBe(false);
	});
});

describe("wants", () => {
	it("scope AND the owner's access", () => {
		expect(wants(rule(), only(100), event({ chat_id: 100 }))).toBe(true);
		expect(wants(rule(), only(100), event({ chat_id: 101 }))).toBe(false);
		expect(wants(rule({ scope: "chat", chat_ids: [101] }), only(100), event({ chat_id: 101 }))).toBe(false);
		expect(wants(rule({ scope: "chat", chat_ids: [101] }), everything, event({ chat_id: 101 }))).toBe(true);
		expect(wants(rule({ scope: "bot", bot_id: 2 }), everything, event({ bot_id: 1 }))).toBe(false);
	});

	it("a webhook that knows the log's head at its creation takes the events after it, whatever their stored time", () => {
		// Another node's clock, or an ingest batch that waited for the log's lock, put the time before CREATED.
		expect(wants(rule({ after_seq: 10 }), everything, event({ seq: 11, created_at: EARLIER }))).toBe(true);
		expect(wants(rule({ after_seq: 10 }), everything, event({ seq: 10, created_at: LATER }))).toBe(false);
		expect(wants(rule({ after_seq: 10 }), everything, event({ seq: 10, created_at: LATER }), { includeEarlier: true })).toBe(true);
	});

	it("events stored before the webhook existed are not its, unless replay asks for them", () => {
		expect(wants(rule(), everything, event({ created_at: EARLIER }))).toBe(false);
		expect(wants(rule(), everything, event({ created_at: CREATED }))).toBe(true);
		expect(wants(rule(), everything, event({ created_at: EARLIER }), { includeEarlier: true })).toBe(true);
		// Replay still keeps to the scope and the owner's access.
		expect(wants(rule(), only(101), event({ created_at: EARLIER }), { includeEarlier: true })).toBe(false);
		expect(wants(rule({ event_types: ["update"] }), everything, event({ created_at: EARLIER }), { includeEarlier: true })).toBe(false);
	});
});
