/**
 * Grants on a chat: GET/PUT /chats/:id/permissions, DELETE /chats/:id/permissions/:grant_id.
 * Managing them needs chats:manage and can_manage on that chat (admins need no grant).
 */
import { Op, type Transaction } from "sequelize";
import type { Database } from "../../lib/db/connection";
import { fail } from "../../lib/errors";
import { principalOf, respondCreated, respondWith, type GatewayContext } from "../../lib/meta";
import { filteredList, pageParams } from "../../lib/paging";
import { grantView, loadRightsOn, RIGHTS, type GrantRow, type Right } from "./grants";
import type { Principal } from "./principal";
import type { AuthActions, AuthThis } from "./context";
import { ID } from "../../lib/validator";

const FLAG = { type: "boolean", optional: true, convert: true } as const;

interface PutGrantParams {
	id: number;
	user_id?: number;
	api_key_id?: number;
	can_read?: boolean;
	can_send?: boolean;
	can_manage?: boolean;
}

async function manageableChat(this: AuthThis, ctx: GatewayContext, chatId: number): Promise<void> {
	const chat = await this.runtime.db.models.Chat.findByPk(chatId, { attributes: ["id"] });
	if (!chat) throw fail.notFound("Chat");
	await this.requireChatRight(principalOf(ctx), chatId, "can_manage");
}

/**
 * Which rights the caller holds on the chat now (all of them for an admin), read in the transaction
 * that changes the chat's grants: a check made before it could pass for a manager whose own grant
 * an admin was revoking at that moment, and its PUT then gave back what the revocation took.
 */
async function rightsNow(db: Database, principal: Principal, chatId: number, transaction: Transaction): Promise<Set<Right>> {
	if (principal.is_admin) return new Set(RIGHTS);
	const rights = await loadRightsOn(db, principal, chatId, transaction);
	const held = new Set(RIGHTS.filter((right) => rights?.[right]));
	if (!held.has("can_manage")) throw fail.forbidden(`Needs can_manage on chat ${chatId}`);
	return held;
}

/**
 * Nobody gives, replaces or takes away more than they hold (as with roles and keys): can_manage
 * alone let a manager grant anyone can_read and can_send, or strip them from a grant it could not
 * have given.
 */
function requireHeld(held: Set<Right>, rights: Partial<Record<Right, unknown>>, doing: string): void {
	const unheld = RIGHTS.filter((right) => Boolean(rights[right]) && !held.has(right));
	if (unheld.length > 0) throw fail.forbidden(`Only grants of rights you hold on this chat can be ${doing}; you lack ${unheld.join(", ")}`);
}

export const grantActions: AuthActions = {
	actions: {
		listChatPermissions: {
			rest: "GET /chats/:id/permissions",
			permission: "chats:manage",
			params: { $$strict: true, id: ID, ...pageParams },
			async handler(this: AuthThis, ctx: GatewayContext<{ id: number; limit?: number; cursor?: string }>) {
				await manageableChat.call(this, ctx, ctx.params.id);
				const limit = ctx.params.limit ?? 50;
				const list = filteredList("grants", { chat: ctx.params.id });
				const after = this.runtime.cursors.after(list, ctx.params.cursor);
				const rows = await this.runtime.db.models.ChatPermission.findAll({
					where: { chat_id: ctx.params.id, ...(after === null ? {} : { id: { [Op.gt]: after } }) },
					order: [["id", "ASC"]],
					limit: limit + 1,
					raw: true,
				});
				return this.runtime.cursors.page(list, rows as unknown as GrantRow[], limit, (r) => r.id, grantView);
			},
		},

		putChatPermission: {
			rest: "PUT /chats/:id/permissions",
			permission: "chats:manage",
			params: {
				$$strict: true,
				id: ID,
				user_id: { ...ID, optional: true },
				api_key_id: { ...ID, optional: true },
				can_read: FLAG,
				can_send: FLAG,
				can_manage: FLAG,
			},
			async handler(this: AuthThis, ctx: GatewayContext<PutGrantParams>) {
				const { id: chatId, user_id, api_key_id, can_read = false, can_send = false, can_manage = false } = ctx.params;
				if ((user_id === undefined) === (api_key_id === undefined)) {
					throw fail.validation([
						{ field: "user_id", message: "Give exactly one of 'user_id' and 'api_key_id'." },
						{ field: "api_key_id", message: "Give exactly one of 'user_id' and 'api_key_id'." },
					]);
				}
				await manageableChat.call(this, ctx, chatId);
				const { db } = this.runtime;
				const grantee = user_id !== undefined ? await db.models.User.findByPk(user_id) : await db.models.ApiKey.findByPk(api_key_id!);
				if (!grantee) {
					const field = user_id !== undefined ? "user_id" : "api_key_id";
					throw fail.validation([{ field, message: `No ${field === "user_id" ? "user" : "API key"} with this id` }]);
				}
				const who = user_id !== undefined ? { user_id, api_key_id: null } : { user_id: null, api_key_id: api_key_id! };
				const rights = { can_read, can_send, can_manage };
				const upsert = () =>
					db.transaction(async (transaction) => {
						const held = await rightsNow(db, principalOf(ctx), chatId, transaction);
						requireHeld(held, rights, "given");
						const existing = await db.models.ChatPermission.findOne({ where: { chat_id: chatId, ...who }, transaction });
						if (existing) {
							requireHeld(held, existing.get({ plain: true }) as GrantRow, "replaced");
							return { row: await existing.update(rights, { transaction }), created: false };
						}
						const row = await db.models.ChatPermission.create(
							{ chat_id: chatId, ...who, ...rights, granted_by_user_id: principalOf(ctx).user_id || null },
							{ transaction },
						);
						return { row, created: true };
					});
				let result: Awaited<ReturnType<typeof upsert>>;
				try {
					result = await upsert();
				} catch (err) {
					// Two PUTs for the same principal raced: the loser updates what the winner created.
					if ((err as Error).name !== "SequelizeUniqueConstraintError") throw err;
					result = await upsert();
				}
				await this.announce({ kind: "grants", chat_id: chatId, ...who });
				if (result.created) respondCreated(ctx, `/chats/${chatId}/permissions`);
				return grantView(result.row.get({ plain: true }) as GrantRow);
			},
		},

		deleteChatPermission: {
			rest: "DELETE /chats/:id/permissions/:grant_id",
			permission: "chats:manage",
			params: { $$strict: true, id: ID, grant_id: ID },
			async handler(this: AuthThis, ctx: GatewayContext<{ id: number; grant_id: number }>) {
				await manageableChat.call(this, ctx, ctx.params.id);
				const { db } = this.runtime;
				const grant = await db.transaction(async (transaction) => {
					const held = await rightsNow(db, principalOf(ctx), ctx.params.id, transaction);
					const lock = db.dialect === "mysql" ? { lock: transaction.LOCK.UPDATE } : {};
					const found = await db.models.ChatPermission.findOne({ where: { id: ctx.params.grant_id, chat_id: ctx.params.id }, transaction, ...lock });
					if (!found) throw fail.notFound("Grant");
					requireHeld(held, found.get({ plain: true }) as GrantRow, "removed");
					await found.destroy({ transaction });
					return found;
				});
				await this.announce({
					kind: "grants",
					chat_id: ctx.params.id,
					user_id: grant.user_id === null ? null : Number(grant.user_id),
					api_key_id: grant.api_key_id === null ? null : Number(grant.api_key_id),
				});
				respondWith(ctx, 204);
				return null;
			},
		},
	},
};
