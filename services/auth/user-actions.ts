/** Users CRUD (admin only): POST/GET /users, GET/PATCH/DELETE /users/:id. */
import { Op } from "sequelize";
import type { Database } from "../../lib/db/connection";
import { fail } from "../../lib/errors";
import { principalOf, respondCreated, respondWith, type GatewayContext } from "../../lib/meta";
import { pageParams } from "../../lib/paging";
import { hashSecret } from "./passwords";
import { powersBeyond, ROLES, type Principal, type RoleName } from "./principal";
import { lockAdminRole, otherActiveAdmins, powersOfRoles, rolesByUser, setRoles, userView } from "./users";
import { retireKeysOf } from "./retired-keys";
import { describeRights, loadGrants, loadUserWideGrants, rightsBeyond } from "./grants";
import type { AuthActions, AuthThis } from "./context";
import { ID } from "../../lib/validator";

const USERNAME = { type: "string", trim: true, lowercase: true, min: 3, max: 64, pattern: /^[a-z0-9][a-z0-9_.-]*$/ } as const;
const PASSWORD = { type: "string", min: 10, max: 256 } as const;
const EMAIL = { type: "email", max: 254, normalize: true, optional: true, nullable: true } as const;
const ROLE_LIST = { type: "array", items: { type: "enum", values: [...ROLES] }, min: 1, max: 3, unique: true } as const;

interface CreateUserParams {
	username: string;
	password: string;
	email?: string | null;
	roles?: RoleName[];
}

interface UpdateUserParams {
	id: number;
	password?: string;
	email?: string | null;
	roles?: RoleName[];
	is_active?: boolean;
}

async function viewOf(this: AuthThis, id: number) {
	const { db } = this.runtime;
	const user = await db.models.User.findByPk(id);
	if (!user) throw fail.notFound("User");
	return userView(user, (await rolesByUser(db, [user.id])).get(user.id) ?? []);
}

/**
 * A principal gives no user more than it holds itself: an admin's API key narrowed to users:write
 * could otherwise create an admin (or reset an admin's password) and log in as one.
 */
async function mayGrantRoles(db: Database, principal: Principal, roles: RoleName[]): Promise<void> {
	const beyond = powersBeyond(principal, await powersOfRoles(db, roles));
	if (beyond.length > 0) throw fail.forbidden(`These roles can do what you cannot (${beyond.join(", ")})`);
}

/**
 * Changing or deleting a user who can do more than the caller is refused (as rotating such a key is).
 * Judged by the roles the user holds, active or not: re-enabling a disabled admin, with a password
 * the caller chose, would give those roles back to the caller. A caller bound by chat grants (an
 * admin's narrowed key) is also refused a user whose grants, or whose keys' grants, reach chats it
 * cannot: with a password it set, it would log in as that user and hold them.
 */
async function mayManageUser(this: AuthThis, principal: Principal, userId: number): Promise<void> {
	const { db } = this.runtime;
	const roles = ((await rolesByUser(db, [userId])).get(userId) ?? []) as RoleName[];
	const beyond = powersBeyond(principal, await powersOfRoles(db, roles));
	if (!principal.is_admin) {
		const rights = rightsBeyond(await loadGrants(db, principal), await loadUserWideGrants(db, userId));
		if (rights.length > 0) beyond.push(describeRights(rights));
	}
	if (beyond.length > 0) throw fail.forbidden(`User ${userId} can do what you cannot (${beyond.join(", ")})`);
}

export const userActions: AuthActions = {
	actions: {
		createUser: {
			rest: "POST /users",
			conflict: "a user with this username or email exists",
			permission: "users:write",
			retryPolicy: { enabled: false },
			params: { $$strict: true, username: USERNAME, password: PASSWORD, email: EMAIL, roles: { ...ROLE_LIST, optional: true } },
			async handler(this: AuthThis, ctx: GatewayContext<CreateUserParams>) {
				const { db } = this.runtime;
				const { username, password, email, roles = ["viewer"] } = ctx.params;
				await mayGrantRoles(db, principalOf(ctx), roles);
				const passwordHash = await hashSecret(password);
				let id: number;
				try {
					id = await db.transaction(async (transaction) => {
						const user = await db.models.User.create(
							{ username, email: email ?? null, password_hash: passwordHash, last_login_at: null },
							{ transaction },
						);
						await setRoles(db, transaction, user.id, roles);
						return user.id;
					});
				} catch (err) {
					if ((err as Error).name === "SequelizeUniqueConstraintError") {
						const taken = (await db.models.User.count({ where: { username } })) > 0 ? "username" : "email";
						throw fail.conflict(`A user with this ${taken} already exists`, { field: taken });
					}
					throw err;
				}
				respondCreated(ctx, `/users/${id}`);
				return viewOf.call(this, id);
			},
		},

		listUsers: {
			rest: "GET /users",
			permission: "users:read",
			params: { $$strict: true, ...pageParams },
			async handler(this: AuthThis, ctx: GatewayContext<{ limit?: number; cursor?: string }>) {
				const { db } = this.runtime;
				const limit = ctx.params.limit ?? 50;
				const after = this.runtime.cursors.after("users", ctx.params.cursor);
				const users = await db.models.User.findAll({
					where: after === null ? {} : { id: { [Op.gt]: after } },
					order: [["id", "ASC"]],
					limit: limit + 1,
				});
				const roles = await rolesByUser(db, users.map((u) => u.id));
				return this.runtime.cursors.page("users", users, limit, (u) => u.id, (u) => userView(u, roles.get(u.id) ?? []));
			},
		},

		getUser: {
			rest: "GET /users/:id",
			permission: "users:read",
			params: { $$strict: true, id: ID },
			handler(this: AuthThis, ctx: GatewayContext<{ id: number }>) {
				return viewOf.call(this, ctx.params.id);
			},
		},

		updateUser: {
			rest: "PATCH /users/:id",
			conflict: "another user has this email, or the change would leave no active admin",
			permission: "users:write",
			params: {
				$$strict: true,
				id: ID,
				password: { ...PASSWORD, optional: true },
				email: EMAIL,
				roles: { ...ROLE_LIST, optional: true },
				is_active: { type: "boolean", optional: true, convert: true },
			},
			async handler(this: AuthThis, ctx: GatewayContext<UpdateUserParams>) {
				const { db } = this.runtime;
				const { id, password, email, roles, is_active } = ctx.params;
				await mayManageUser.call(this, principalOf(ctx), id);
				if (roles !== undefined) await mayGrantRoles(db, principalOf(ctx), roles);
				const passwordHash = password !== undefined ? await hashSecret(password) : undefined;
				try {
					const losesAdmin = (roles !== undefined && !roles.includes("admin")) || is_active === false;
					await db.transaction(async (transaction) => {
						// Also when roles are set: their rows' foreign key takes a shared lock on the role rows,
						// which would otherwise be taken in the opposite order to a concurrent demotion's.
						if (losesAdmin || roles !== undefined) await lockAdminRole(db, transaction);
						const user = await db.models.User.findByPk(id, { transaction });
						if (!user) throw fail.notFound("User");
						if (losesAdmin) {
							const current = (await rolesByUser(db, [id], transaction)).get(id) ?? [];
							if (current.includes("admin") && (await otherActiveAdmins(db, id, transaction)) === 0) {
								throw fail.conflict("The last active admin cannot lose the admin role or be disabled");
							}
						}
						await user.update(
							{
								...(passwordHash !== undefined ? { password_hash: passwordHash } : {}),
								...(email !== undefined ? { email } : {}),
								...(is_active !== undefined ? { is_active } : {}),
							},
							{ transaction },
						);
						if (roles !== undefined) {
							await setRoles(db, transaction, id, roles);
							// New roles change the user too, when no column of its own does.
							// (Model.update drops a values object of updated_at alone: a statement of its own.)
							await db.sequelize.query("UPDATE users SET updated_at = ? WHERE id = ?", { replacements: [new Date(), id], transaction });
						}
					});
				} catch (err) {
					if ((err as Error).name === "SequelizeUniqueConstraintError") throw fail.conflict("A user with this email already exists", { field: "email" });
					throw err;
				}
				if (password !== undefined || is_active === false) {
					// A new password or a disabled account ends every open login.
					await db.models.RefreshToken.update(
						{ revoked_at: new Date(), revoked_reason: password !== undefined ? "password_change" : "disabled" },
						{ where: { user_id: id, revoked_at: null } },
					);
				}
				await this.announce({ kind: "user", id });
				return viewOf.call(this, id);
			},
		},

		deleteUser: {
			rest: "DELETE /users/:id",
			conflict: "the user is the caller, or the last active admin",
			permission: "users:write",
			params: { $$strict: true, id: ID },
			async handler(this: AuthThis, ctx: GatewayContext<{ id: number }>) {
				const { db } = this.runtime;
				const { id } = ctx.params;
				if (principalOf(ctx).user_id === id) throw fail.conflict("You cannot delete yourself");
				await mayManageUser.call(this, principalOf(ctx), id);
				await db.transaction(async (transaction) => {
					await lockAdminRole(db, transaction);
					const user = await db.models.User.findByPk(id, { transaction });
					if (!user) throw fail.notFound("User");
					const roles = (await rolesByUser(db, [id], transaction)).get(id) ?? [];
					if (roles.includes("admin") && (await otherActiveAdmins(db, id, transaction)) === 0) {
						throw fail.conflict("The last active admin cannot be deleted");
					}
					// Its keys, grants, refresh tokens and webhooks go with it (foreign keys cascade); its
					// keys' secrets are kept to be refused as ended, not as guesses (retired-keys.ts).
					await retireKeysOf(db, id, transaction);
					await user.destroy({ transaction });
				});
				await this.announce({ kind: "user", id });
				respondWith(ctx, 204);
				return null;
			},
		},
	},
};
