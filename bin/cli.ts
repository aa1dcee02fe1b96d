/**
 * Operator CLI, in both modes: `npm run cli -- <command>`. It runs the same actions as the REST API
 * (same validation, same rules) in a broker of its own that talks to the configured database
 * directly. In cluster mode it then announces its changes to the running nodes (the auth.changed
 * events its actions broadcast), so a revoked key's live connections close at once there too.
 *
 *   user create --username <name> [--role admin|operator|viewer ...] [--email <e>] [--password-stdin]
 *   user list
 *   apikey create --user <username> --name <name> [--scope <perm> ...] [--expires <ISO time>] [--rate-limit <n>]
 *   apikey list [--user <username>]
 *   apikey revoke <id>
 *   bots rotate-key          re-seal bot tokens, Telegram and webhook signing secrets under the first TOKEN_ENCRYPTION_KEYS key
 *
 * `users` and `apikeys` (the REPL's words) work as well as `user` and `apikey`.
 */
import { createInterface } from "node:readline";
import { parseArgs } from "node:util";
import { join } from "node:path";
import { ServiceBroker } from "moleculer";
import { createBrokerOptions } from "../moleculer.config";
import { ConfigError, loadConfig, missingSqliteFile } from "../lib/config";
import { announceToCluster, recorderOf, type Announcement } from "../lib/cluster-announcement";
import { migrateUp, pendingMigrations } from "../lib/db/migrator";
import { toApiError } from "../lib/errors";
import { openRuntime, type Runtime } from "../lib/runtime";
import { SYSTEM_PRINCIPAL } from "../services/auth/principal";
import { rotateEncryptionKeys } from "../services/bots/key-rotation";

const USAGE = `usage: npm run cli -- <command>
  user|users create --username <name> [--role admin|operator|viewer ...] [--email <e>] [--password-stdin]
  user|users list
  apikey|apikeys create --user <username> --name <name> [--scope <permission> ...] [--expires <ISO time>] [--rate-limit <n>]
  apikey|apikeys list [--user <username>]
  apikey|apikeys revoke <id>
  bots rotate-key
user create asks for the password on a terminal; otherwise (or with --password-stdin) it reads it from stdin.`;

/** The command groups, under the CLI's words and the REPL's. */
const GROUPS: Readonly<Record<string, "user" | "apikey" | "bots">> = { user: "user", users: "user", apikey: "apikey", apikeys: "apikey", bots: "bots" };

/** What the CLI's actions broadcast that running nodes must hear (their caches and live connections). */
const ANNOUNCED_EVENTS = ["auth.changed"];

class UsageError extends Error {}

async function readPassword(fromStdin: boolean): Promise<string> {
	if (fromStdin || !process.stdin.isTTY) {
		let text = "";
		for await (const chunk of process.stdin) text += chunk;
		return text.replace(/\r?\n$/, "");
	}
	// Prompt without echoing what is typed.
	const rl = createInterface({ input: process.stdin, output: process.stdout, terminal: true });
	const output = rl as unknown as { _writeToOutput: (s: string) => void; output: NodeJS.WritableStream };
	let prompted = false;
	output._writeToOutput = (s: string) => {
		if (!prompted) output.output.write(s);
	};
	return new Promise((resolve) => {
		rl.question("Password: ", (answer) => {
			rl.close();
			process.stdout.write("\n");
			resolve(answer);
		});
		prompted = true;
	});
}

async function userIdByName(runtime: Runtime, username: string): Promise<number> {
	const user = await runtime.db.models.User.findOne({ where: { username: username.trim().toLowerCase() }, attributes: ["id"] });
	if (!user) throw new UsageError(`no user named "${username}"`);
	return user.id;
}

function printTable(rows: Array<Record<string, unknown>>, columns: string[]): void {
	const cell = (v: unknown) => (v === null || v === undefined ? "-" : Array.isArray(v) ? v.join(",") : String(v));
	const widths = columns.map((c) => Math.max(c.length, ...rows.map((r) => cell(r[c]).length)));
	const line = (values: string[]) => values.map((v, i) => v.padEnd(widths[i]!)).join("  ");
	console.log(line(columns));
	for (const row of rows) console.log(line(columns.map((c) => cell(row[c]))));
}

/** The command's options; one it does not know (or a missing value) is a usage error. */
function parseOptions(args: string[]) {
	try {
		return parseArgs({
			args,
			allowPositionals: true,
			options: {
				username: { type: "string" },
				user: { type: "string" },
				role: { type: "string", multiple: true },
				email: { type: "string" },
				"password-stdin": { type: "boolean" },
				name: { type: "string" },
				scope: { type: "string", multiple: true },
				expires: { type: "string" },
				"rate-limit": { type: "string" },
			},
		});
	} catch (err) {
		throw new UsageError((err as Error).message);
	}
}

type Call = <T>(action: string, params: Record<string, unknown>) => Promise<T>;

/** Every row of a paged list action, page after page (a list stopped at its first 200). */
async function allPages(call: Call, action: string, params: Record<string, unknown>): Promise<Array<Record<string, unknown>>> {
	const rows: Array<Record<string, unknown>> = [];
	for (let cursor: string | null = null; ; ) {
		const page: { data: Array<Record<string, unknown>>; next_cursor: string | null } = await call(action, { ...params, limit: 200, ...(cursor ? { cursor } : {}) });
		rows.push(...page.data);
		if (!page.next_cursor) return rows;
		cursor = page.next_cursor;
	}
}

type ParsedOptions = ReturnType<typeof parseOptions>;

/** What a command runs with: the actions (as the system principal), the runtime and its options. */
interface CommandInput extends ParsedOptions {
	call: Call;
	runtime: Runtime;
}

/** Each command: how many positional arguments it takes, and what it does. */
const COMMANDS: Readonly<Record<string, { positionals: number; run(input: CommandInput): Promise<void> }>> = {
	"user create": {
		positionals: 0,
		async run({ call, values }) {
			if (!values.username) throw new UsageError("user create needs --username");
			const password = await readPassword(Boolean(values["password-stdin"]));
			const user = await call("auth.createUser", {
				username: values.username,
				password,
				...(values.email ? { email: values.email } : {}),
				roles: values.role ?? ["viewer"],
			});
			console.log(JSON.stringify(user, null, 2));
		},
	},
	"user list": {
		positionals: 0,
		async run({ call }) {
			printTable(await allPages(call, "auth.listUsers", {}), ["id", "username", "roles", "is_active", "last_login_at"]);
		},
	},
	"apikey create": {
		positionals: 0,
		async run({ call, runtime, values }) {
			if (!values.user || !values.name) throw new UsageError("apikey create needs --user and --name");
			const key = await call<Record<string, unknown>>("auth.createApiKey", {
				user_id: await userIdByName(runtime, values.user),
				name: values.name,
				...(values.scope ? { scopes: values.scope } : {}),
				...(values.expires ? { expires_at: values.expires } : {}),
				...(values["rate-limit"] ? { rate_limit: Number(values["rate-limit"]) } : {}),
			});
			console.log(JSON.stringify(key, null, 2));
			console.error("The key is shown this once; store it now.");
		},
	},
	"apikey list": {
		positionals: 0,
		async run({ call, runtime, values }) {
			const rows = await allPages(call, "auth.listApiKeys", values.user ? { user_id: await userIdByName(runtime, values.user) } : {});
			printTable(rows, ["id", "user_id", "name", "prefix", "scopes", "expires_at", "revoked_at", "last_used_at"]);
		},
	},
	"apikey revoke": {
		positionals: 1,
		async run({ call, positionals }) {
			const id = /^[1-9]\d{0,15}$/.test(positionals[0] ?? "") ? Number(positionals[0]) : Number.NaN;
			if (!Number.isSafeInteger(id) || positionals.length !== 1) throw new UsageError("apikey revoke needs the key's id (a positive whole number)");
			await call("auth.revokeApiKey", { id });
			console.log(`API key ${id} revoked`);
		},
	},
	"bots rotate-key": {
		positionals: 0,
		async run({ runtime }) {
			const result = await rotateEncryptionKeys(runtime.db, runtime.config.encryptionKeys);
			console.log(`Active key "${result.active_key}": ${result.bots_resealed} bot(s) and ${result.webhooks_resealed} webhook(s) re-sealed. Keys no row uses any more can leave TOKEN_ENCRYPTION_KEYS.`);
		},
	},
};

type ParsedCommand = ParsedOptions & { run: (input: CommandInput) => Promise<void> };

/** The command line, checked before anything is opened: a typo changes nothing and makes nothing. */
function parseCommand(argv: string[]): ParsedCommand {
	const [word, command = "", ...rest] = argv;
	const group = Object.hasOwn(GROUPS, word ?? "") ? GROUPS[word!]! : (word ?? "");
	const key = `${group} ${command}`;
	if (!Object.hasOwn(COMMANDS, key)) throw new UsageError(`unknown command "${[word, command].filter(Boolean).join(" ")}"`);
	const { positionals: expected, run } = COMMANDS[key]!;
	const parsed = parseOptions(rest);
	if (parsed.positionals.length > expected) throw new UsageError(`unexpected argument "${parsed.positionals[expected]}"`);
	const rateLimit = parsed.values["rate-limit"];
	if (rateLimit !== undefined && !/^\d{1,15}$/.test(rateLimit)) throw new UsageError("--rate-limit needs a whole number of requests per second");
	return { ...parsed, run };
}

async function main(): Promise<void> {
	const argv = process.argv.slice(2);
	if (argv.length === 0 || argv[0] === "help" || argv[0] === "--help") {
		console.log(USAGE);
		return;
	}
	const parsed = parseCommand(argv);
	// A mistyped DATA_DIR made a new database (and first admin) there, and the change went nowhere.
	const missing = missingSqliteFile();
	if (missing !== null) throw new NoDatabaseError(missing);
	const config = loadConfig({ ...process.env, LOG_LEVEL: process.env.LOG_LEVEL ?? "warn" });
	const runtime = await openRuntime(config);
	// Outside the cluster: its auth service must not take the cluster's calls (it announces its changes afterwards).
	const broker = new ServiceBroker(
		createBrokerOptions(runtime, { nodeID: `cli-${process.pid}`, transporter: null, logger: false }),
	);
	const announcements: Announcement[] = [];
	try {
		// MIGRATE_ON_START=false means the schema moves only by `npm run migrate`: a CLI run must not move it.
		if (config.migrateOnStart) await migrateUp(runtime.db);
		else if ((await pendingMigrations(runtime.db)).length > 0) throw new SchemaBehindError();
		broker.loadService(join(__dirname, "..", "services", "auth.service"));
		broker.createService(recorderOf(ANNOUNCED_EVENTS, announcements));
		await broker.start();
		const call: Call = (action, params) => broker.call(action, params, { meta: { principal: SYSTEM_PRINCIPAL } });
		await parsed.run({ ...parsed, call, runtime });
		await announceToCluster(runtime, announcements).catch((err: unknown) => {
			// The change is made: only the running nodes' live connections learn of it later.
			console.error(`warning: the running nodes were not told (${(err as Error).message}); they see the change within a second, their open connections within 15 s`);
		});
	} finally {
		await broker.stop();
		await runtime.close();
	}
}

class NoDatabaseError extends Error {
	constructor(file: string) {
		super(`error: there is no gateway database at ${file}: check DATA_DIR (or DATABASE_URL); a gateway started there once (npm start) makes it`);
	}
}

class SchemaBehindError extends Error {
	constructor() {
		super("error: the database schema is behind this build and MIGRATE_ON_START=false: run `npm run migrate -- up` first");
	}
}

main().catch((err: unknown) => {
	if (err instanceof UsageError) {
		console.error(`error: ${err.message}\n\n${USAGE}`);
		process.exit(2);
	}
	if (err instanceof ConfigError || err instanceof SchemaBehindError || err instanceof NoDatabaseError) {
		console.error(err.message);
		process.exit(1);
	}
	const { status, body } = toApiError(err);
	// An operator at a console needs the cause (a database that refuses connections, say), not "Internal server error".
	console.error(`error: ${status >= 500 && err instanceof Error ? err.message : body.error.message}`);
	for (const field of (body.error.details?.fields as Array<{ field: string; message: string }>) ?? []) console.error(`  ${field.field}: ${field.message}`);
	process.exit(1);
});
