/** The API shapes of a webhook, a delivery and an attempt; webhook rows read as matching rules. */
import type { Webhook, WebhookAttempt, WebhookDelivery } from "../../lib/db/models";
import { iso } from "../../lib/time";
import type { Scope, WebhookRule } from "./matching";

function jsonList<T>(text: string | null): T[] | null {
	if (text === null || text === undefined) return null;
	try {
		const value = JSON.parse(text) as unknown;
		return Array.isArray(value) ? (value as T[]) : null;
	} catch {
		return null;
	}
}

export function ruleOf(row: Webhook): WebhookRule {
	return {
		id: Number(row.id),
		scope: row.scope as Scope,
		bot_id: row.bot_id === null ? null : Number(row.bot_id),
		chat_ids: jsonList<number>(row.chat_ids),
		reply_to_message_id: row.reply_to_message_id === null ? null : Number(row.reply_to_message_id),
		event_types: jsonList<string>(row.event_types),
		after_seq: row.after_seq === null || row.after_seq === undefined ? null : Number(row.after_seq),
		created_at: iso(row.created_at)!,
	};
}

export function webhookView(row: Webhook, breaker?: { state: string; open_until: string | null }) {
	const rule = ruleOf(row);
	return {
		id: rule.id,
		url: row.url,
		scope: rule.scope,
		bot_id: rule.bot_id,
		chat_ids: rule.chat_ids,
		reply_to_message_id: rule.reply_to_message_id,
		event_types: rule.event_types,
		ordered: Boolean(row.ordered),
		max_concurrency: row.max_concurrency,
		is_active: Boolean(row.is_active),
		disabled_reason: row.disabled_reason,
		owner: { user_id: row.owner_user_id === null ? null : Number(row.owner_user_id), api_key_id: row.owner_api_key_id === null ? null : Number(row.owner_api_key_id) },
		previous_secret_expires_at: iso(row.previous_secret_expires_at),
		...(breaker ? { breaker } : {}),
		created_at: iso(row.created_at),
		updated_at: iso(row.updated_at),
	};
}

export function attemptView(row: WebhookAttempt) {
	return {
		attempt: row.attempt,
		at: iso(row.started_at),
		status_code: row.status_code,
		duration_ms: row.duration_ms,
		error: row.error,
		response_excerpt: row.response_excerpt,
	};
}

export function deliveryView(row: WebhookDelivery, attempts: WebhookAttempt[] = []) {
	return {
		id: Number(row.id),
		webhook_id: Number(row.webhook_id),
		event_id: `evt_${row.event_seq}`,
		event_seq: Number(row.event_seq),
		event: row.event_type,
		chat_id: row.chat_id === null ? null : Number(row.chat_id),
		status: row.status,
		attempts: row.attempts,
		next_attempt_at: row.status === "pending" || row.status === "failed" ? iso(row.next_attempt_at) : null,
		last_status_code: row.last_status_code,
		last_error: row.last_error,
		delivered_at: iso(row.delivered_at),
		created_at: iso(row.created_at),
		updated_at: iso(row.updated_at),
		log: attempts.map(attemptView),
	};
}
