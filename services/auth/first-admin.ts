import { randomBytes } from "node:crypto";
import type { Database } from "../../lib/db/connection";
import { hashSecret } from "./passwords";

export interface FirstAdminResult {
	username: string;
	/** Set only when the password was generated here: the caller prints it, once. */
	generatedPassword: string | null;
}

/**
 * Creates the first admin when the users table is empty. Several auth nodes may start together on a
 * fresh database: the unique username lets one of them win, and only the winner reports a password.
 */
export async function ensureFirstAdmin(
	db: Database,
	admin: { username: string; password: string | null },
): Promise<FirstAdminResult | null> {
	const { User, Role, UserRole } = db.models;
	if ((await User.count()) > 0) return null;
	const generatedPassword = admin.password ? null : randomBytes(18).toString("base64url");
	const passwordHash = await hashSecret(admin.password ?? generatedPassword!);
	try {
		await db.transaction(async (transaction) => {
			if ((await User.count({ transaction })) > 0) throw new AlreadySeeded();
			const role = await Role.findOne({ where: { name: "admin" }, transaction });
			if (!role) throw new Error("the admin role is missing: run the migrations first");
			const user = await User.create(
				{ username: admin.username, email: null, password_hash: passwordHash, last_login_at: null },
				{ transaction },
			);
			await UserRole.create({ user_id: user.id, role_id: role.id }, { transaction });
		});
	} catch (err) {
		if (err instanceof AlreadySeeded || (err as Error).name === "SequelizeUniqueConstraintError") return null;
		throw err;
	}
	return { username: admin.username, generatedPassword };
}

class AlreadySeeded extends Error {}
