/**
 * The built-in roles and their permissions (resource:action), and the counters of the event log.
 * Inserts ignore rows that exist, so the step is safe to re-run. Down refuses once it would lose
 * what up cannot give back: the users' roles, and how far the counters have moved.
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
	// Counters whose rows are missing (removed by an older build's down, or by hand) start at the
	// log's head, not 0: seqs handed out before would be handed out again (a duplicate events.seq on
	// every store, and consumers skipping what they think they saw). The dispatch cursor starts there
	// too: events before it are not delivered twice (a webhook's replay can send them again).
	const head = await logHead(qi);
	await qi.bulkInsert(
		"sequences",
		SEQUENCES.map((name) => ({ name, value: head })),
		IGNORE_DUPLICATES,
	);
	await qi.sequelize.query("UPDATE sequences SET value = ? WHERE name = 'events' AND value < ?", { replacements: [head, head] });
}

/** The highest seq in the event log, 0 for an empty one. */
async function logHead(qi: QueryInterface): Promise<number> {
	const [row] = await qi.sequelize.query<{ head: number | string | null }>("SELECT MAX(seq) AS head FROM events", { type: QueryTypes.SELECT });
	return Number(row?.head ?? 0);
}

/** Why reverting would lose data for good: users holding roles, counters that moved. Empty when nothing. */
async function whatDownWouldLose(qi: QueryInterface): Promise<string[]> {
	const [holders] = await qi.sequelize.query<{ n: number | string }>("SELECT COUNT(DISTINCT user_id) AS n FROM user_roles", { type: QueryTypes.SELECT });
	const counters = await qi.sequelize.query<{ name: string; value: number | string }>("SELECT name, value FROM sequences WHERE value <> 0", { type: QueryTypes.SELECT });
	const head = await logHead(qi);
	const losses: string[] = [];
	if (Number(holders?.n ?? 0) > 0) losses.push(`${Number(holders!.n)} user(s) hold roles (removing the roles removes their grants)`);
	const events = Number(counters.find((c) => c.name === "events")?.value ?? 0);
	const dispatched = Number(counters.find((c) => c.name === "webhook_dispatch")?.value ?? 0);
	if (events > 0 || head > 0) losses.push(`the event log has handed out seqs up to ${Math.max(events, head)} (its counter would start again at 0)`);
	if (dispatched > 0) losses.push(`webhook deliveries have been created up to seq ${dispatched}`);
	return losses;
}

/** Why this migration cannot be reverted, or null (checked for every planned migration before any is reverted). */
export async function refuseDown({ context: qi }: Step): Promise<string | null> {
	const losses = await whatDownWouldLose(qi);
	if (losses.length === 0) return null;
	return `${losses.join("; ")}: reverting 0002 would lose that for good, and applying it again would not bring it back. Revert no further than 0003 (\`down --to 0003-message-lookups\` keeps 0002); to remove everything, drop the database.`;
}

export async function down({ context: qi }: Step): Promise<void> {
	const refusal = await refuseDown({ context: qi });
	if (refusal) throw new Error(refusal);
	await qi.bulkDelete("sequences", { name: SEQUENCES });
	await qi.bulkDelete("role_permissions", {});
	await qi.bulkDelete("roles", { name: Object.keys(ROLES) });
	await qi.bulkDelete("permissions", { name: Object.keys(PERMISSIONS) });
}
