/** The chat ACL: grants of can_read, can_send and can_manage on a chat, to a user or an API key. */
import { Op, type Transaction, type WhereOptions } from "sequelize";
import { iso } from "../../lib/time";
import type { Database } from "../../lib/db/connection";
import type { Principal } from "./principal";

export const RIGHTS = ["can_read", "can_send", "can_manage"] as const;
export type Right = (typeof RIGHTS)[number];
export type Rights = Record<Right, boolean>;

/** chat id -> rights, for one principal. */
export type GrantMap = Map<number, Rights>;

export interface GrantRow {
	id: number;
	chat_id: number;
	user_id: number | null;
	api_key_id: number | null;
	can_read: boolean;
	can_send: boolean;
	can_manage: boolean;
	granted_by_user_id: number | null;
	created_at: Date;
	updated_at: Date;
}

export function grantView(row: GrantRow) {
	return {
		id: row.id,
		chat_id: row.chat_id,
		user_id: row.user_id,
		api_key_id: row.api_key_id,
		can_read: Boolean(row.can_read),
		can_send: Boolean(row.can_send),
		can_manage: Boolean(row.can_manage),
		granted_by_user_id: row.granted_by_user_id,
		created_at: iso(row.created_at),
		updated_at: iso(row.updated_at),
	};
}

/** Whose grants apply: a key's own, never its owner's (a key does not inherit its owner's grants). */
function holder(principal: Pick<Principal, "type" | "id">): { user_id: number } | { api_key_id: number } {
	return principal.type === "api_key" ? { api_key_id: principal.id } : { user_id: principal.id };
}

function rightsOf(row: Record<Right, unknown>): Rights {
	return { can_read: Boolean(row.can_read), can_send: Boolean(row.can_send), can_manage: Boolean(row.can_manage) };
}

/** Every grant held directly by a user or an API key: for the whole list only (chatAccess). */
export async function loadGrants(db: Database, principal: Pick<Principal, "type" | "id">): Promise<GrantMap> {
	const rows = await db.models.ChatPermission.findAll({ where: holder(principal), attributes: ["chat_id", ...RIGHTS], raw: true });
	return new Map(rows.map((row) => [Number(row.chat_id), rightsOf(row)]));
}

/**
 * Every grant a user's login reaches: the user's own and those of its API keys (a user may rotate
 * its keys and take their secrets), merged per chat.
 */
export async function loadUserWideGrants(db: Database, userId: number): Promise<GrantMap> {
	const keyIds = (await db.models.ApiKey.findAll({ where: { user_id: userId }, attributes: ["id"], raw: true })).map((key) => Number(key.id));
	const rows = await db.models.ChatPermission.findAll({
		where: keyIds.length > 0 ? { [Op.or]: [{ user_id: userId }, { api_key_id: keyIds }] } : { user_id: userId },
		attributes: ["chat_id", ...RIGHTS],
		raw: true,
	});
	const grants: GrantMap = new Map();
	for (const row of rows) {
		const merged = grants.get(Number(row.chat_id)) ?? { can_read: false, can_send: false, can_manage: false };
		for (const right of RIGHTS) merged[right] ||= Boolean(row[right]);
		grants.set(Number(row.chat_id), merged);
	}
	return grants;
}

/** The chat rights `target` holds and `holder` does not, as "can_read on chat 12". */
export function rightsBeyond(holder: GrantMap, target: GrantMap): string[] {
	const beyond: string[] = [];
	for (const [chatId, rights] of target) {
		for (const right of RIGHTS) if (rights[right] && !holder.get(chatId)?.[right]) beyond.push(`${right} on chat ${chatId}`);
	}
	return beyond;
}

/** rightsBeyond's list for a message: the first three, then how many more. */
export function describeRights(rights: string[]): string {
	return rights.length <= 3 ? rights.join(", ") : `${rights.slice(0, 3).join(", ")} and ${rights.length - 3} more chat rights`;
}

/**
 * The principal's own grant on one chat, or null: one row through the unique (chat_id, user_id) or
 * (chat_id, api_key_id) index, so a check costs the same with 10 grants or 100k.
 */
export async function loadRightsOn(db: Database, principal: Pick<Principal, "type" | "id">, chatId: number, transaction?: Transaction): Promise<Rights | null> {
	// In a transaction the row is read locked (MySQL): a revocation of it racing the transaction waits, or is waited for.
	const lock = transaction && db.dialect === "mysql" ? { transaction, lock: transaction.LOCK.UPDATE } : { transaction };
	const row = await db.models.ChatPermission.findOne({ where: { chat_id: chatId, ...holder(principal) }, attributes: [...RIGHTS], raw: true, ...lock });
	return row ? rightsOf(row) : null;
}

/** Admins are not bound by grants; everyone else needs the right in its grant on that very chat. */
export function allows(principal: Principal, rights: Rights | null | undefined, right: Right): boolean {
	if (principal.is_admin) return true;
	return rights?.[right] === true;
}

export function chatsWith(grants: GrantMap, right: Right): number[] {
	return [...grants].filter(([, rights]) => rights[right]).map(([chatId]) => chatId);
}

/**
 * SQL selecting the ids of the chats a non-admin principal holds `right` on (chatsWith's rule, its
 * own grants): a subquery, so the database filters instead of a query inlining every readable id.
 */
export function grantedChatIdsSql(db: Database, principal: Pick<Principal, "type" | "id">, right: Right): string {
	if (!RIGHTS.includes(right)) throw new Error(`Unknown right ${String(right)}`);
	const q = (name: string) => db.sequelize.getQueryInterface().quoteIdentifier(name);
	const [column, id] = Object.entries(holder(principal))[0]!;
	// MySQL and SQLite both store a true BOOLEAN as 1.
	return `SELECT ${q("chat_id")} FROM ${q("chat_permissions")} WHERE ${q(column)} = ${db.sequelize.escape(id)} AND ${q(right)} = 1`;
}

/** `chats.id` restricted to what a non-admin principal holds `right` on, for a Sequelize where. */
export function chatsWithSubquery(db: Database, principal: Pick<Principal, "type" | "id">, right: Right): WhereOptions {
	return { id: { [Op.in]: db.sequelize.literal(`(${grantedChatIdsSql(db, principal, right)})`) } };
}
