/** Which webhook wants which event: its scope, its event types, and its owner's chat ACL. */
import type { ReadAccess } from "../../mixins/event-stream/subscription-hub";
import type { EventType, GatewayEvent } from "../broker/event-log";

export const SCOPES = ["all", "bot", "chat", "reply"] as const;
export type Scope = (typeof SCOPES)[number];
export const EVENT_TYPES: EventType[] = ["new_message", "edited_message", "outgoing_message", "update"];

export interface WebhookRule {
	id: number;
	scope: Scope;
	bot_id: number | null;
	chat_ids: number[] | null;
	reply_to_message_id: number | null;
	event_types: string[] | null;
	/**
	 * Events stored before the webhook existed are not its (replay asks for them explicitly): those
	 * up to `after_seq`, the log's head when it was created, or for a webhook created before that was
	 * kept, those stored before its `created_at`.
	 */
	after_seq: number | null;
	created_at: string;
}

export function inScope(rule: WebhookRule, event: GatewayEvent): boolean {
	if (rule.event_types && !rule.event_types.includes(event.type)) return false;
	switch (rule.scope) {
		case "all":
			return true;
		case "bot":
			return event.bot_id === rule.bot_id;
		case "chat":
			return event.chat_id !== null && (rule.chat_ids ?? []).includes(event.chat_id);
		case "reply": {
			const replyTo = (event.message as { reply_to_message_id?: number | null } | undefined)?.reply_to_message_id;
			return event.chat_id !== null && (rule.chat_ids ?? []).includes(event.chat_id) && replyTo === rule.reply_to_message_id;
		}
	}
}

/** The owner may read the event's chat (events that name no chat are for admins only). */
export function ownerMayRead(access: ReadAccess, event: Pick<GatewayEvent, "chat_id">): boolean {
	return access.all || (event.chat_id !== null && access.chats.has(event.chat_id));
}

export function wants(rule: WebhookRule, access: ReadAccess, event: GatewayEvent, options: { includeEarlier?: boolean } = {}): boolean {
	if (!options.includeEarlier && (rule.after_seq !== null ? event.seq <= rule.after_seq : event.created_at < rule.created_at)) return false;
	return inScope(rule, event) && ownerMayRead(access, event);
}
