/**
 * The dispatcher's audiences, built and looked up at scale. An owner's access (its readable chats,
 * possibly 100k of them) is asked for once per owner and shared by all of its webhooks; the list is
 * indexed once, so an event is matched only against the webhooks that could want it, and an attempt
 * finds its webhook's audience without a scan.
 */
import type { Webhook } from "../../lib/db/models";
import type { ReadAccess } from "../../mixins/event-stream/subscription-hub";
import type { GatewayEvent, Reader } from "../broker/event-log";
import type { Audience, AudienceList } from "./dispatcher";
import { ruleOf } from "./views";

/** Who a webhook's access is that of: its API key if it was made with one, else its user. */
export function ownerKeyOf(row: Pick<Webhook, "owner_api_key_id" | "owner_user_id">): string {
	const { type, id } = ownerReaderOf(row);
	return `${type}:${id}`;
}

/** The owner as its grants name it (the log's replay looks them up): its API key, else its user. */
export function ownerReaderOf(row: Pick<Webhook, "owner_api_key_id" | "owner_user_id">): Reader {
	return row.owner_api_key_id !== null ? { type: "api_key", id: Number(row.owner_api_key_id) } : { type: "user", id: Number(row.owner_user_id) };
}

/** The audience of every row, in row order, asking `accessOf` once per distinct owner (with that owner's first row). */
export async function audiencesOf(rows: Webhook[], accessOf: (row: Webhook) => Promise<ReadAccess>): Promise<Audience[]> {
	const byOwner = new Map<string, Promise<ReadAccess>>();
	for (const row of rows) {
		const key = ownerKeyOf(row);
		if (!byOwner.has(key)) byOwner.set(key, accessOf(row));
	}
	return Promise.all(rows.map(async (row) => ({ rule: ruleOf(row), access: await byOwner.get(ownerKeyOf(row))! })));
}

/** Positions in `audiences` of the webhooks each kind of event could match (matching.ts's scopes). */
export interface AudienceIndex {
	byId: Map<number, Audience>;
	/** Scope "all": every event. */
	everyEvent: number[];
	/** Scope "bot", by its bot_id (null included: inScope compares it as it is). */
	byBot: Map<number | null, number[]>;
	/** Scopes "chat" and "reply", under each of their chat ids. */
	byChat: Map<number, number[]>;
}

function push<K>(map: Map<K, number[]>, key: K, position: number): void {
	const list = map.get(key);
	if (list) list.push(position);
	else map.set(key, [position]);
}

export function indexAudiences(audiences: Audience[]): AudienceIndex {
	const index: AudienceIndex = { byId: new Map(), everyEvent: [], byBot: new Map(), byChat: new Map() };
	audiences.forEach((audience, position) => {
		const { rule } = audience;
		index.byId.set(rule.id, audience);
		if (rule.scope === "all") index.everyEvent.push(position);
		else if (rule.scope === "bot") push(index.byBot, rule.bot_id, position);
		// A chat listed twice must not make the webhook a candidate twice (two deliveries of one event).
		else for (const chatId of new Set(rule.chat_ids ?? [])) push(index.byChat, chatId, position);
	});
	return index;
}

/** A list's index, built on first use: lists are shared (audiences() caches them) and never changed. */
const indexes = new WeakMap<AudienceList, AudienceIndex>();

export function indexOf(list: AudienceList): AudienceIndex {
	let index = indexes.get(list);
	if (!index) {
		index = indexAudiences(list.audiences);
		indexes.set(list, index);
	}
	return index;
}

/**
 * The audiences that could want the event, in list order (so deliveries are written in the order a
 * full scan wrote them). Only candidates: the caller still asks `wants` of each.
 */
export function candidatesFor(list: AudienceList, event: Pick<GatewayEvent, "bot_id" | "chat_id">): Audience[] {
	const index = indexOf(list);
	const positions = [...index.everyEvent, ...(index.byBot.get(event.bot_id) ?? []), ...(event.chat_id !== null ? (index.byChat.get(event.chat_id) ?? []) : [])];
	return positions.sort((a, b) => a - b).map((p) => list.audiences[p]!);
}

/** The listed audience of one webhook, if the list has it. */
export function audienceById(list: AudienceList, webhookId: number): Audience | undefined {
	return indexOf(list).byId.get(webhookId);
}
