/**
 * A group upgraded to a supergroup goes on under a new Telegram id, which is a chat of its own here.
 * Those who could see the group keep seeing it: its grants are copied to the supergroup, and
 * chat-scoped webhooks naming the group name the supergroup too. Without this, every viewer and
 * webhook of the group silently stopped receiving it at the upgrade.
 *
 * Telegram tells it twice, a service message in each chat (migrate_to_chat_id in the group,
 * migrate_from_chat_id in the supergroup), in either order: the carry-over runs when both chats are
 * stored, and running it again changes nothing.
 */
import type { LoggerInstance, ServiceBroker } from "moleculer";
import { Op } from "sequelize";
import type { Database } from "../../lib/db/connection";
import type { AuthChange } from "../auth/cache";
import type { IncomingUpdate } from "./store";

export interface ChatMigration {
	botId: number;
	fromTelegramId: number;
	toTelegramId: number;
}

export interface CarriedOver {
	/** The supergroup's gateway id. */
	chatId: number;
	/** One per grant created on the supergroup, for the auth caches. */
	grants: AuthChange[];
	webhookIds: number[];
}

/** The migrations the service messages among `items` announce. */
export function migrationsIn(items: IncomingUpdate[]): ChatMigration[] {
	const found: ChatMigration[] = [];
	for (const { botId, update } of items) {
		for (const item of update.items) {
			if (item.message === undefined || item.chat.business_connection_id !== null) continue;
			if (item.migrate_to_chat_id !== null) found.push({ botId, fromTelegramId: item.chat.telegram_id, toTelegramId: item.migrate_to_chat_id });
			if (item.migrate_from_chat_id !== null) found.push({ botId, fromTelegramId: item.migrate_from_chat_id, toTelegramId: item.chat.telegram_id });
		}
	}
	return found;
}

function chatIdsOf(raw: string | null): number[] {
	try {
		const parsed: unknown = JSON.parse(raw ?? "[]");
		return Array.isArray(parsed) ? parsed.map(Number) : [];
	} catch {
		return [];
	}
}

/** Copies the group's grants and webhook subscriptions to the supergroup; null until both chats are stored. */
export async function carryOverChatMigration(db: Database, migration: ChatMigration): Promise<CarriedOver | null> {
	const { Chat, ChatPermission, Webhook } = db.models;
	const chatOf = (telegramId: number) => Chat.findOne({ where: { bot_id: migration.botId, telegram_id: telegramId, business_connection_id: "" }, attributes: ["id", "migrated_to_chat_id"] });
	const [from, to] = await Promise.all([chatOf(migration.fromTelegramId), chatOf(migration.toTelegramId)]);
	if (!from || !to) return null;
	return db.transaction(async (t) => {
		if (from.migrated_to_chat_id === null) await from.update({ migrated_to_chat_id: migration.toTelegramId }, { transaction: t });
		const grants: AuthChange[] = [];
		const existing = await ChatPermission.findAll({ where: { chat_id: to.id }, attributes: ["user_id", "api_key_id"], transaction: t, raw: true });
		const holds = new Set(existing.map((g) => `${g.user_id}:${g.api_key_id}`));
		// A grant already on the supergroup was given there on purpose: it is left as it is.
		for (const grant of await ChatPermission.findAll({ where: { chat_id: from.id }, transaction: t, raw: true })) {
			if (holds.has(`${grant.user_id}:${grant.api_key_id}`)) continue;
			const { can_read, can_send, can_manage, user_id, api_key_id, granted_by_user_id } = grant;
			await ChatPermission.create({ chat_id: to.id, user_id, api_key_id, can_read, can_send, can_manage, granted_by_user_id } as never, { transaction: t });
			grants.push({ kind: "grants", chat_id: Number(to.id), user_id: user_id === null ? null : Number(user_id), api_key_id: api_key_id === null ? null : Number(api_key_id) });
		}
		const webhookIds: number[] = [];
		for (const hook of await Webhook.findAll({ where: { scope: "chat", chat_ids: { [Op.ne]: null } }, attributes: ["id", "chat_ids"], transaction: t })) {
			const ids = chatIdsOf(hook.chat_ids);
			if (!ids.includes(Number(from.id)) || ids.includes(Number(to.id))) continue;
			// Only over the list read: a PUT or PATCH of the webhook meanwhile wins (and names what it names).
			const [changed] = await Webhook.update({ chat_ids: JSON.stringify([...ids, Number(to.id)]) }, { where: { id: hook.id, chat_ids: hook.chat_ids }, transaction: t });
			if (changed === 1) webhookIds.push(Number(hook.id));
		}
		return { chatId: Number(to.id), grants, webhookIds };
	});
}

/**
 * Carries a migration over and tells the cluster (the auth caches of the new grants, the webhooks'
 * audiences). Learned from a service message (ingest) or from Telegram refusing a send to the group
 * (the sender, and sends refused before queueing): service messages missed, say before the bot was
 * registered, must not leave the supergroup's chat without the group's grants. Never throws: the
 * next service message or refused send tries again.
 */
export async function followChatMigration(db: Database, broker: ServiceBroker, logger: LoggerInstance, migration: ChatMigration): Promise<void> {
	try {
		const carried = await carryOverChatMigration(db, migration);
		if (!carried) return;
		for (const change of carried.grants) await broker.broadcast("auth.changed", change);
		if (carried.webhookIds.length > 0) await broker.broadcast("webhooks.changed", {});
		if (carried.grants.length + carried.webhookIds.length > 0) {
			logger.info(`Chat ${migration.fromTelegramId} became supergroup ${migration.toTelegramId}: ${carried.grants.length} grant(s) and ${carried.webhookIds.length} webhook(s) carried over`);
		}
	} catch (err) {
		logger.warn(`Cannot carry chat ${migration.fromTelegramId}'s grants over to supergroup ${migration.toTelegramId}:`, (err as Error).message);
	}
}
