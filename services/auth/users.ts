/** Users with their roles, and the principal a user acts as (roles joined to permissions). */
import { iso } from "../../lib/time";
import { QueryTypes, type Transaction } from "sequelize";
import type { Database } from "../../lib/db/connection";
import { fail } from "../../lib/errors";
import { userPrincipal, type Principal, type RoleName } from "./principal";

export interface UserRow {
	id: number;
	username: string;
	email: string | null;
	is_active: boolean;
	last_login_at: Date | null;
	created_at: Date;
	updated_at: Date;
}

export function userView(user: UserRow, roles: string[]) {
	return {
		id: user.id,
		username: user.username,
		email: user.email,
		roles,
		is_active: Boolean(user.is_active),
		last_login_at: iso(user.last_login_at),
		created_at: iso(user.created_at),
		updated_at: iso(user.updated_at),
	};
}

/** The active user's principal, or null when the user is gone or disabled. */
export async function loadUserPrincipal(db: Database, userId: number, rateLimit?: number): Promise<Principal | null> {
	const rows = await db.sequelize.query<{ username: string; is_active: number | boolean; role: string | null; permission: string | null }>(
		`SELECT u.username, u.is_active, r.name AS role, p.name AS permission
		   FROM users u
		   LEFT JOIN user_roles ur ON ur.user_id = u.id
		   LEFT JOIN roles r ON r.id = ur.role_id
		   LEFT JOIN role_permissions rp ON rp.role_id = r.id
		   LEFT JOIN permissions p ON p.id = rp.permission_id
		  WHERE u.id = :userId`,
		{ type: QueryTypes.SELECT, replacements: { userId } },
	);
	if (rows.length === 0 || !rows[0]!.is_active) return null;
	const roles = [...new Set(rows.map((r) => r.role).filter((r): r is string => r !== null))].sort();
	const permissions = [...new Set(rows.map((r) => r.permission).filter((p): p is string => p !== null))].sort();
	return userPrincipal({ id: userId, username: rows[0]!.username }, roles, permissions, rateLimit);
}

/** What a user with these roles could do: their permissions, and admin (past every chat grant). */
export async function powersOfRoles(db: Database, roles: RoleName[]): Promise<Pick<Principal, "permissions" | "is_admin">> {
	if (roles.length === 0) return { permissions: [], is_admin: false };
	const rows = await db.sequelize.query<{ name: string }>(
		`SELECT DISTINCT p.name FROM roles r JOIN role_permissions rp ON rp.role_id = r.id JOIN permissions p ON p.id = rp.permission_id WHERE r.name IN (:roles)`,
		{ type: QueryTypes.SELECT, replacements: { roles } },
	);
	return { permissions: rows.map((r) => r.name).sort(), is_admin: roles.includes("admin") };
}

export async function rolesByUser(db: Database, userIds: number[], transaction?: Transaction): Promise<Map<number, string[]>> {
	const result = new Map<number, string[]>(userIds.map((id) => [id, []]));
	if (userIds.length === 0) return result;
	const rows = await db.sequelize.query<{ user_id: number; name: string }>(
		"SELECT ur.user_id, r.name FROM user_roles ur JOIN roles r ON r.id = ur.role_id WHERE ur.user_id IN (:userIds) ORDER BY r.name",
		{ type: QueryTypes.SELECT, replacements: { userIds }, transaction },
	);
	for (const row of rows) result.get(Number(row.user_id))?.push(row.name);
	return result;
}

export async function setRoles(db: Database, t: Transaction, userId: number, roles: RoleName[]): Promise<void> {
	const roleRows = await db.models.Role.findAll({ where: { name: roles }, transaction: t });
	if (roleRows.length !== new Set(roles).size) throw fail.validation([{ field: "roles", message: "Unknown role" }]);
	await db.models.UserRole.destroy({ where: { user_id: userId }, transaction: t });
	await db.models.UserRole.bulkCreate(
		roleRows.map((role) => ({ user_id: userId, role_id: role.id })),
		{ transaction: t },
	);
}

/**
 * Serialises the changes that can take the admin role away: each locks the admin role row first, so
 * on MySQL two of them cannot each count the other's admin and together leave none (write skew). It
 * must be the transaction's first statement: the snapshot its later reads use is taken after it.
 * SQLite runs one write transaction at a time already.
 */
export async function lockAdminRole(db: Database, t: Transaction): Promise<void> {
	if (db.dialect === "mysql") await db.sequelize.query("SELECT id FROM roles WHERE name = 'admin' FOR UPDATE", { transaction: t });
}

/** How many active admins would remain without `excludingUserId`: the last admin cannot go. */
export async function otherActiveAdmins(db: Database, excludingUserId: number, t?: Transaction): Promise<number> {
	const rows = await db.sequelize.query<{ count: number | string }>(
		`SELECT COUNT(*) AS count FROM users u JOIN user_roles ur ON ur.user_id = u.id JOIN roles r ON r.id = ur.role_id
		  WHERE r.name = 'admin' AND u.is_active = :active AND u.id <> :excludingUserId`,
		{ type: QueryTypes.SELECT, replacements: { excludingUserId, active: true }, transaction: t },
	);
	return Number(rows[0]?.count ?? 0);
}
