/** REPL commands for who may do what: `users`, `apikeys`, `grants` (auth's actions). */
import { randomBytes } from "node:crypto";
import { listOption, noExtra, optionalInt, parseId, parseRights, parseUserRef, required, stringOption, UsageError, RIGHTS, type RightName } from "../args";
import { allPages, userIdOf, type GatewayClient } from "../client";
import { ROLES } from "../../../services/auth/principal";
import { commandOf } from "../command";
import { tableOf, text } from "../format";

type Row = Record<string, unknown>;

const USER_COLUMNS = ["id", "username", "email", "roles", "is_active:active", "last_login_at:last login"];
const KEY_COLUMNS = ["id", "user_id:user", "name", "prefix", "scopes", "rate_limit:rate limit", "expires_at:expires", "revoked_at:revoked", "last_used_at:last used"];
const GRANT_COLUMNS = ["id", "user_id:user", "api_key_id:api key", "can_read", "can_send", "can_manage", "updated_at:updated"];

export const users = commandOf(
	"users",
	"Users: list | create | disable | enable | delete",
	[
		"users list",
		"users create <username> [--role admin|operator|viewer ...] [--email <address>] [--password <password>]",
		"  (without --password a password is generated and shown once; a typed one is kept out of the REPL history)",
		"users disable <user>        users enable <user>        users delete <user>",
		"  <user> is an id or a username (@name for a username made of digits)",
	],
	{
		list: {
			async run(client, { positionals }) {
				noExtra(positionals, 0);
				return [tableOf(await allPages<Row>(client, "auth.listUsers"), USER_COLUMNS)];
			},
		},
		create: {
			options: { role: { type: "string", multiple: true }, email: { type: "string" }, password: { type: "string" } },
			async run(client, { positionals, values }) {
				const username = required(positionals, 0, "username");
				noExtra(positionals, 1);
				const roles = listOption(values.role);
				const unknown = roles.filter((r) => !(ROLES as readonly string[]).includes(r));
				if (unknown.length > 0) throw new UsageError(`unknown role "${unknown[0]}" (roles: ${ROLES.join(", ")})`);
				const given = stringOption(values.password);
				const password = given ?? randomBytes(18).toString("base64url");
				const email = stringOption(values.email);
				const user = await client.call<Row>("auth.createUser", { username, password, ...(email ? { email } : {}), ...(roles.length > 0 ? { roles } : {}) });
				return [
					text(`User ${String(user.username)} created (id ${String(user.id)}).`),
					...(given === undefined ? [text(`Password (shown once, store it now): ${password}`)] : []),
					tableOf([user], USER_COLUMNS),
				];
			},
		},
		disable: { run: (client, args) => setActive(client, args.positionals, false) },
		enable: { run: (client, args) => setActive(client, args.positionals, true) },
		delete: {
			async run(client, { positionals }) {
				const ref = required(positionals, 0, "user");
				noExtra(positionals, 1);
				const id = await userIdOf(client, parseUserRef(ref));
				await client.call("auth.deleteUser", { id });
				return [text(`User ${ref} deleted (id ${id}); its API keys, grants and webhooks went with it.`)];
			},
		},
	},
);

async function setActive(client: GatewayClient, positionals: string[], active: boolean) {
	const ref = required(positionals, 0, "user");
	noExtra(positionals, 1);
	const id = await userIdOf(client, parseUserRef(ref));
	const user = await client.call<Row>("auth.updateUser", { id, is_active: active });
	return [text(`User ${String(user.username)} ${active ? "enabled" : "disabled (its logins are ended)"}.`), tableOf([user], USER_COLUMNS)];
}

export const apikeys = commandOf(
	"apikeys",
	"API keys: list | create | revoke",
	[
		"apikeys list [--user <user>]",
		"apikeys create --user <user> --name <name> [--scope <permission> ...] [--expires <ISO time>] [--rate-limit <n>]",
		"apikeys revoke <id>",
	],
	{
		list: {
			options: { user: { type: "string" } },
			async run(client, { positionals, values }) {
				noExtra(positionals, 0);
				const user = stringOption(values.user);
				const params = user ? { user_id: await userIdOf(client, parseUserRef(user)) } : {};
				return [tableOf(await allPages<Row>(client, "auth.listApiKeys", params), KEY_COLUMNS)];
			},
		},
		create: {
			options: { user: { type: "string" }, name: { type: "string" }, scope: { type: "string", multiple: true }, expires: { type: "string" }, "rate-limit": { type: "string" } },
			async run(client, { positionals, values }) {
				noExtra(positionals, 0);
				const user = stringOption(values.user);
				const name = stringOption(values.name);
				if (!user) throw new UsageError("--user is required (whose key it is)");
				if (!name) throw new UsageError("--name is required");
				const scopes = listOption(values.scope);
				const expires = stringOption(values.expires);
				const rateLimit = optionalInt(values["rate-limit"], "rate-limit", 1, 100_000);
				const key = await client.call<Row>("auth.createApiKey", {
					user_id: await userIdOf(client, parseUserRef(user)),
					name,
					...(scopes.length > 0 ? { scopes } : {}),
					...(expires ? { expires_at: expires } : {}),
					...(rateLimit !== undefined ? { rate_limit: rateLimit } : {}),
				});
				return [text(`API key ${String(key.id)} created. Key (shown once, store it now): ${String(key.key)}`), tableOf([key], KEY_COLUMNS)];
			},
		},
		revoke: {
			async run(client, { positionals }) {
				const id = parseId(required(positionals, 0, "id"), "API key id");
				noExtra(positionals, 1);
				await client.call("auth.revokeApiKey", { id });
				return [text(`API key ${id} revoked: it is refused from now on, and its live connections are closed.`)];
			},
		},
	},
);

type Grantee = { user_id: number } | { api_key_id: number };

async function granteeOf(client: GatewayClient, values: Record<string, unknown>): Promise<Grantee> {
	const user = stringOption(values.user);
	const key = stringOption(values.key);
	if ((user === undefined) === (key === undefined)) throw new UsageError("give exactly one of --user <user> and --key <api key id>");
	return user !== undefined ? { user_id: await userIdOf(client, parseUserRef(user)) } : { api_key_id: parseId(key, "--key") };
}

async function currentGrant(client: GatewayClient, chatId: number, grantee: Grantee): Promise<Row | undefined> {
	const grants = await allPages<Row>(client, "auth.listChatPermissions", { id: chatId }, 100_000);
	return grants.find((g) => ("user_id" in grantee ? g.user_id === grantee.user_id : g.api_key_id === grantee.api_key_id));
}

function rightsOf(grant: Row | undefined): Set<RightName> {
	return new Set(RIGHTS.filter((r) => grant?.[r] === true));
}

const GRANTEE_OPTIONS = { user: { type: "string" }, key: { type: "string" } } as const;

export const grants = commandOf(
	"grants",
	"Chat grants: list | grant | revoke",
	[
		"grants list <chat id>",
		"grants grant <chat id> (--user <user> | --key <api key id>) <right> ...    adds rights to what is granted",
		"grants revoke <chat id> (--user <user> | --key <api key id>) [<right> ...] removes those rights (all when none named)",
		`  rights: ${RIGHTS.join(", ")} (or read, send, manage)`,
	],
	{
		list: {
			async run(client, { positionals }) {
				const chatId = parseId(required(positionals, 0, "chat id"), "chat id");
				noExtra(positionals, 1);
				return [tableOf(await allPages<Row>(client, "auth.listChatPermissions", { id: chatId }), GRANT_COLUMNS, `Grants on chat ${chatId}`)];
			},
		},
		grant: {
			options: GRANTEE_OPTIONS,
			async run(client, { positionals, values }) {
				const chatId = parseId(required(positionals, 0, "chat id"), "chat id");
				const added = parseRights(positionals.slice(1));
				const grantee = await granteeOf(client, values);
				const rights = rightsOf(await currentGrant(client, chatId, grantee));
				for (const r of added) rights.add(r);
				const grant = await client.call<Row>("auth.putChatPermission", { id: chatId, ...grantee, ...Object.fromEntries(RIGHTS.map((r) => [r, rights.has(r)])) });
				return [text(`Granted on chat ${chatId}.`), tableOf([grant], GRANT_COLUMNS)];
			},
		},
		revoke: {
			options: GRANTEE_OPTIONS,
			async run(client, { positionals, values }) {
				const chatId = parseId(required(positionals, 0, "chat id"), "chat id");
				const removed = parseRights(positionals.slice(1), 0);
				const grantee = await granteeOf(client, values);
				const grant = await currentGrant(client, chatId, grantee);
				if (!grant) return [text(`Nothing to revoke: no grant on chat ${chatId} for this ${"user_id" in grantee ? "user" : "API key"}.`)];
				const rights = rightsOf(grant);
				for (const r of removed.length > 0 ? removed : RIGHTS) rights.delete(r);
				if (rights.size === 0) {
					await client.call("auth.deleteChatPermission", { id: chatId, grant_id: grant.id });
					return [text(`Grant ${String(grant.id)} on chat ${chatId} removed.`)];
				}
				const updated = await client.call<Row>("auth.putChatPermission", { id: chatId, ...grantee, ...Object.fromEntries(RIGHTS.map((r) => [r, rights.has(r)])) });
				return [text(`Revoked ${removed.join(", ")} on chat ${chatId}.`), tableOf([updated], GRANT_COLUMNS)];
			},
		},
	},
);
