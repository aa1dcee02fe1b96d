/**
 * The dispatcher's audiences at scale: an owner's access is asked for once and shared by all of
 * its webhooks; the index hands an event only the webhooks whose scope could take it, and what
 * `wants` then picks is exactly what a scan of every webhook picked.
 */
import type { Webhook } from "../../lib/db/models";
import type { ReadAccess } from "../../mixins/event-stream/subscription-hub";
import type { GatewayEvent } from "../../services/broker/event-log";
import { audienceById, audiencesOf, candidatesFor, ownerKeyOf } from "../../services/delivery/audiences";
import type { Audience, AudienceList } from "../../services/delivery/dispatcher";
import { wants, type Scope } from "../../services/delivery/matching";

const row = (id: number, owner: { user?: number; key?: number }, extra: Partial<Webhook> = {}): Webhook =>
	({
		id,
		owner_user_id: owner.user ?? null,
		owner_api_key_id: owner.key ?? null,
		scope: "all",
		bot_id: null,
		chat_ids: null,
		reply_to_message_id: null,
		event_types: null,
		after_seq: null,
		created_at: new Date(0),
		...extra,
	}) as unknown as Webhook;

describe("audiencesOf", () => {
	it("asks each distinct owner's access once and shares it between that owner's webhooks, in row order", async () => {
		const rows = [row(1, { user: 7 }), row(2, { key: 7 }), row(3, { user: 7 }), row(4, { user: 8 }), row(5, { key: 7 }), row(6, { user: 7 })];
		const asked: string[] = [];
		const accessOf = async (r: Webhook): Promise<ReadAccess> => {
			asked.push(ownerKeyOf(r));
			return { all: false, chats: new Set([Number(r.id)]) };
		};
		const audiences = await audiencesOf(rows, accessOf);
		// A user and an API key with the same id are different owners.
		expect(asked.sort()).toEqual(["api_key:7", "user:7", "user:8"]);
		expect(audiences.map((a) => a.rule.id)).toEqual([1, 2, 3, 4, 5, 6]);
		expect(audiences[0]!.access).toBe(audiences[2]!.access);
		expect(audiences[0]!.access).toBe(audiences[5]!.access);
		expect(audiences[1]!.access).toBe(audiences[4]!.access);
		expect(audiences[0]!.access).not.toBe(audiences[1]!.access);
		expect([...audiences[1]!.access.chats]).toEqual([2]);
	});

	it("a failing lookup fails the build (never a webhook silently sent nothing)", async () => {
		await expect(audiencesOf([row(1, { user: 1 })], async () => Promise.reject(new Error("auth is down")))).rejects.toThrow("auth is down");
	});
});

describe("candidatesFor", () => {
	const SCOPES: Scope[] = ["all", "bot", "chat", "reply"];
	/** A small deterministic generator, so a failure reproduces. */
	const random = (seed: number) => () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);

	const audience = (id: number, scope: Scope, pick: () => number): Audience => ({
		rule: {
			id,
			scope,
			bot_id: pick() < 0.2 ? null : 1 + Math.floor(pick() * 3),
			// Duplicates on purpose: a chat listed twice is still one delivery.
			chat_ids: pick() < 0.1 ? null : Array.from({ length: Math.floor(pick() * 4) }, () => 1 + Math.floor(pick() * 5)),
			reply_to_message_id: pick() < 0.5 ? null : 1 + Math.floor(pick() * 3),
			event_types: pick() < 0.7 ? null : ["new_message"],
			after_seq: null,
			created_at: "1970-01-01T00:00:00.000Z",
		},
		access: pick() < 0.3 ? { all: true, chats: new Set() } : { all: false, chats: new Set([1, 2, 3]) },
	});
	const event = (seq: number, pick: () => number): GatewayEvent =>
		({
			seq,
			type: pick() < 0.5 ? "new_message" : "edited_message",
			bot_id: pick() < 0.1 ? (null as unknown as number) : 1 + Math.floor(pick() * 3),
			chat_id: pick() < 0.15 ? null : 1 + Math.floor(pick() * 5),
			message: { reply_to_message_id: pick() < 0.5 ? null : 1 + Math.floor(pick() * 3) },
			created_at: "2020-01-01T00:00:00.000Z",
		}) as unknown as GatewayEvent;

	it("picks, with wants, exactly the webhooks a scan of every webhook picked, in list order", () => {
		const pick = random(42);
		const list: AudienceList = { audiences: Array.from({ length: 300 }, (_, i) => audience(i + 1, SCOPES[i % 4]!, pick)), active: "x" };
		let matched = 0;
		for (let seq = 1; seq <= 2_000; seq++) {
			const e = event(seq, pick);
			const scanned = list.audiences.filter((a) => wants(a.rule, a.access, e)).map((a) => a.rule.id);
			const indexed = candidatesFor(list, e).filter((a) => wants(a.rule, a.access, e)).map((a) => a.rule.id);
			expect(indexed).toEqual(scanned);
			matched += scanned.length;
		}
		// The comparison meant something: events matched webhooks of every scope.
		expect(matched).toBeGreaterThan(1_000);
	});

	it("hands an event only the webhooks its bot and chat could concern", () => {
		const rule = (id: number, scope: Scope, botId: number | null, chatIds: number[] | null) => ({
			rule: { id, scope, bot_id: botId, chat_ids: chatIds, reply_to_message_id: null, event_types: null, after_seq: null, created_at: "1970-01-01T00:00:00.000Z" },
			access: { all: true, chats: new Set<number>() },
		});
		const list: AudienceList = {
			audiences: [rule(1, "all", null, null), rule(2, "bot", 5, null), rule(3, "bot", 6, null), rule(4, "chat", null, [10, 10, 11]), rule(5, "reply", null, [12]), rule(6, "chat", null, null)],
			active: "x",
		};
		const ids = (botId: number, chatId: number | null) => candidatesFor(list, { bot_id: botId, chat_id: chatId }).map((a) => a.rule.id);
		expect(ids(5, 10)).toEqual([1, 2, 4]);
		expect(ids(6, 12)).toEqual([1, 3, 5]);
		expect(ids(7, null)).toEqual([1]);
		expect(audienceById(list, 4)).toBe(list.audiences[3]);
		expect(audienceById(list, 99)).toBeUndefined();
	});
});
