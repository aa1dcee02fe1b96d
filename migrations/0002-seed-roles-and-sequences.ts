/**
 * The built-in roles and their permissions (resource:action), and the counters of the event log.
 * Inserts ignore rows that exist, so the step is safe to re-run.
 */
import { QueryTypes, type QueryInterface, type QueryOptions } from "sequelize";

/** bulkInsert honours ignoreDuplicates (INSERT IGNORE / INSERT OR IGNORE); its typings omit it. */
const IGNORE_DUPLICATES = { ignoreDuplicates: true } as QueryOptions;

type Step = { context: QueryInterface };

const PERMISSIONS: Record<string, string> = {
	"users:read": "List and read users",
	"users:write": "Create, change and delete users",
	"apikeys:read": "List and read API keys",
	"apikeys:write": "Create, rotate and revoke API keys",
	"bots:read": "List and read bots",
	"bots:write": "Register, change and remove bots",
	"chats:read": "List and read chats the principal's grants allow",
	"chats:manage": "Change grants on chats the principal can manage",
	"messages:read": "Read message history the principal's grants allow",
	"messages:send": "Send messages to chats the principal can send to",
	"webhooks:read": "List webhooks and their delivery log",
	"webhooks:write": "Create, change, test, retry and replay webhooks",
	"system:read": "Cluster statistics and operations views",
};

const ROLES: Record<string, { description: string; permissions: string[] }> = {
	admin: { description: "Everything; not bound by chat grants", permissions: Object.keys(PERMISSIONS) },
	operator: {
		description: "Bots, webhooks, API keys, and grants on chats it can manage",
		permissions: [
			"apikeys:read",
			"apikeys:write",
			"bots:read",
			"bots:write",
			"chats:read",
			"chats:manage",
			"messages:read",
			"messages:send",
			"webhooks:read",
			"webhooks:write",
		],
	},
	viewer: { description: "Reads what its grants allow", permissions: ["chats:read", "messages:read"] },
};

const SEQUENCES = ["events", "webhook_dispatch"];

export async function up({ context: qi }: Step): Promise<void> {
	await qi.bulkInsert(
		"permissions",
		Object.entries(PERMISSIONS).map(([name, description]) => ({ name, description })),
		IGNORE_DUPLICATES,
	);
	await qi.bulkInsert(
		"roles",
		Object.entries(ROLES).map(([name, role]) => ({ name, description: role.description })),
		IGNORE_DUPLICATES,
	);
	const roles = await qi.sequelize.query<{ id: number; name: string }>("SELECT id, name FROM roles", { type: QueryTypes.SELECT });
	const permissions = await qi.sequelize.query<{ id: number; name: string }>("SELECT id, name FROM permissions", {
		type: QueryTypes.SELECT,
	});
	const permissionId = new Map(permissions.map((p) => [p.name, p.id]));
	const rows = roles.flatMap((role) =>
		(ROLES[role.name]?.permissions ?? []).map((name) => ({ role_id: role.id, permission_id: permissionId.get(name) })),
	);
	await qi.bulkInsert("role_permissions", rows, IGNORE_DUPLICATES);
	await qi.bulkInsert(
		"sequences",
		SEQUENCES.map((name) => ({ name, value: 0 })),
		IGNORE_DUPLICATES,
	);
}

export async function down({ context: qi }: Step): Promise<void> {
	await qi.bulkDelete("sequences", { name: SEQUENCES });
	await qi.bulkDelete("role_permissions", {});
	await qi.bulkDelete("roles", { name: Object.keys(ROLES) });
	await qi.bulkDelete("permissions", { name: Object.keys(PERMISSIONS) });
}
