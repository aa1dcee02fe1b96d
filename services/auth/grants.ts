/** The chat ACL: grants of can_read, can_send and can_manage on a chat, to a user or an API key. */
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

/** The grants held directly by a user, or by an API key (a key does not inherit its owner's grants). */
export async function loadGrants(db: Database, principal: Pick<Principal, "type" | "id">): Promise<GrantMap> {
	const where = principal.type === "api_key" ? { api_key_id: principal.id } : { user_id: principal.id };
	const rows = await db.models.ChatPermission.findAll({ where, attributes: ["chat_id", "can_read", "can_send", "can_manage"], raw: true });
	return new Map(
		rows.map((row) => [
			Number(row.chat_id),
			{ can_read: Boolean(row.can_read), can_send: Boolean(row.can_send), can_manage: Boolean(row.can_manage) },
		]),
	);
}

/** Admins are not bound by grants; everyone else needs the right on that very chat. */
export function allows(principal: Principal, grants: GrantMap, chatId: number, right: Right): boolean {
	if (principal.is_admin) return true;
	return grants.get(chatId)?.[right] === true;
}

export function chatsWith(grants: GrantMap, right: Right): number[] {
	return [...grants].filter(([, rights]) => rights[right]).map(([chatId]) => chatId);
}
