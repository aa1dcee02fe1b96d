/**
 * `npm run migrate` (bin/migrate.ts): a mistyped revert stops with a usage error and reverts nothing.
 * `npm run cli` (bin/cli.ts): lists every row, refuses malformed ids, names the cause of a failure.
 */
import { spawnSync } from "node:child_process";
import { readdirSync } from "node:fs";
import { join } from "node:path";
import { openDatabase } from "../../lib/db/connection";
import { appendEvents } from "../../services/broker/event-log";
import { enqueueMessage } from "../../services/bots/outbox";
import { insertBot, insertChat, updateDraft } from "../support/database";
import { tempDir } from "../support/harness";

const ROOT = join(__dirname, "..", "..");

function script(name: string, dataDir: string, args: string[], env: Record<string, string> = {}) {
	const run = spawnSync(process.execPath, ["--import", "tsx", join(ROOT, "bin", name), ...args], {
		cwd: ROOT,
		env: { PATH: process.env.PATH ?? "", HOME: process.env.HOME ?? "", DATA_DIR: dataDir, ...env },
		encoding: "utf8",
		timeout: 30_000,
	});
	return { status: run.status, output: `${run.stdout}${run.stderr}` };
}

const migrate = (dataDir: string, ...args: string[]) => script("migrate.ts", dataDir, args);

describe("npm run migrate", () => {
	const dataDir = tempDir("tgw-migrate-");

	beforeAll(() => {
		expect(migrate(dataDir, "up").status).toBe(0);
	}, 30_000);

	it.each([
		[["down", "--step", "-1"]],
		[["down", "--step", "abc"]],
		[["down", "--step", "1.5"]],
		[["down", "--to"]],
		[["down", "--setp", "3"]],
		[["down", "--to", "0", "--step", "1"]],
		[["sideways"]],
		[[]],
	])("%j is a usage error (exit 2) and reverts nothing", (args) => {
		const run = migrate(dataDir, ...args);
		expect(run.status).toBe(2);
		expect(run.output).toMatch(/usage: npm run migrate/);
		expect(migrate(dataDir, "status").output).toMatch(/pending: {2}-/);
	}, 30_000);

	it("a down that would drop data applying again cannot restore names it and reverts nothing; --discard reverts it", async () => {
		const db = await openDatabase(`sqlite:${join(dataDir, "gateway.sqlite")}`);
		try {
			await db.sequelize.query("INSERT INTO retired_api_key_secrets (prefix, key_hash, reason, retired_at) VALUES ('tgw_cli1', 'hash', 'revoked', '2026-01-01')");
		} finally {
			await db.close();
		}
		const refused = migrate(dataDir, "down", "--step", "2");
		expect(refused.status).toBe(1);
		expect(refused.output).toMatch(/nothing was reverted: .*0015-retired-api-key-secrets: the record of 1 API key secret.*Give --discard/);
		expect(refused.output).not.toMatch(/Reverting/);
		expect(migrate(dataDir, "status").output).toMatch(/pending: {2}-/);
		const discarded = migrate(dataDir, "down", "--step", "2", "--discard");
		expect(discarded.status).toBe(0);
		expect(discarded.output).toMatch(/Reverted: 0016-mysql-exact-business-connections, 0015-retired-api-key-secrets/);
		expect(migrate(dataDir, "up").status).toBe(0);
	}, 60_000);

	it("down --step 2 reverts the newest two, and up applies them again", () => {
		const [previous, last] = readdirSync(join(ROOT, "migrations")).filter((f) => /^\d{4}-.*\.ts$/.test(f)).sort().slice(-2).map((f) => f.replace(/\.ts$/, ""));
		expect(migrate(dataDir, "down", "--step", "2").output).toContain(`Reverted: ${last}, ${previous}`);
		expect(migrate(dataDir, "up").output).toContain(`Applied: ${previous}, ${last}`);
	}, 30_000);

	it("down --to <name> reverts <name> too (umzug's convention), and says so in its help and before acting", () => {
		const help = migrate(dataDir, "down", "--help");
		expect(help.status).toBe(0);
		expect(help.output).toMatch(/down --to <name> +revert every migration applied after <name>, AND <name> itself \(inclusive/);
		const [previous, last] = readdirSync(join(ROOT, "migrations")).filter((f) => /^\d{4}-.*\.ts$/.test(f)).sort().slice(-2).map((f) => f.replace(/\.ts$/, ""));
		const down = migrate(dataDir, "down", "--to", previous!);
		expect(down.status).toBe(0);
		const plan = `Reverting 2, newest first: ${last}, ${previous} (--to ${previous} reverts ${previous} itself too)`;
		expect(down.output).toContain(plan);
		expect(down.output.indexOf(plan)).toBeLessThan(down.output.indexOf("migration reverting"));
		expect(down.output).toContain(`Reverted: ${last}, ${previous}`);
		expect(migrate(dataDir, "up").output).toContain(`Applied: ${previous}, ${last}`);
	}, 30_000);

	it("down --to a name that is not applied is a usage error and reverts nothing", () => {
		const down = migrate(dataDir, "down", "--to", "0003-no-such-migration");
		expect(down.status).toBe(2);
		expect(down.output).toMatch(/"0003-no-such-migration" is not an applied migration/);
		expect(migrate(dataDir, "status").output).toMatch(/pending: {2}-/);
	}, 30_000);

	it("a migration on record that this build does not know is listed by status; down refuses to go beneath it, and up to apply beneath it (exit 1, not 'up to date')", async () => {
		const db = await openDatabase(`sqlite:${join(dataDir, "gateway.sqlite")}`);
		try {
			await db.sequelize.query("INSERT INTO schema_migrations (name) VALUES ('9999-from-a-newer-build')");
		} finally {
			await db.close();
		}
		expect(migrate(dataDir, "status").output).toMatch(/unknown: {2}9999-from-a-newer-build \(newer than this build\)/);
		const down = migrate(dataDir, "down");
		expect(down.status).toBe(1);
		expect(down.output).toMatch(/does not know \(9999-from-a-newer-build\)/);
		expect(migrate(dataDir, "status").output).toMatch(/pending: {2}-/);
		const up = migrate(dataDir, "up");
		expect(up.status).toBe(1);
		expect(up.output).toMatch(/does not know \(9999-from-a-newer-build\).*nothing was applied/);
		expect(up.output).not.toMatch(/up to date/);
	}, 30_000);
});

describe("npm run migrate -- seq (after restoring a backup)", () => {
	const dataDir = tempDir("tgw-migrate-seq-");
	const appendOne = async (): Promise<number> => {
		const db = await openDatabase(`sqlite:${join(dataDir, "gateway.sqlite")}`);
		try {
			const [event] = await db.rawTransaction((t) => appendEvents(db, t, [updateDraft(1, null, "after restore")]));
			return event!.seq;
		} finally {
			await db.close();
		}
	};

	beforeAll(() => {
		expect(migrate(dataDir, "up").status).toBe(0);
	}, 30_000);

	it("shows the counter; --above <n> makes new events' seqs follow <n>, and never lowers the counter", async () => {
		expect(await appendOne()).toBe(1);
		expect(migrate(dataDir, "seq").output).toContain("events: counter 1 (the last seq handed out), highest stored seq 1");
		const raise = migrate(dataDir, "seq", "--above", "5000");
		expect(raise.status).toBe(0);
		expect(raise.output).toContain("Event counter raised from 1 to 5000: the next event gets seq 5001");
		expect(await appendOne()).toBe(5001);
		const lower = migrate(dataDir, "seq", "--above", "10");
		expect(lower.output).toContain("Event counter left at 5001 (already at or above 10)");
		expect(await appendOne()).toBe(5002);
	}, 60_000);

	it("restored --above <n>: the counter passes <n>, and every message the backup held as queued fails (may have been delivered) with its event, instead of being sent again", async () => {
		const db = await openDatabase(`sqlite:${join(dataDir, "gateway.sqlite")}`);
		let queued: number[];
		try {
			const bot = await insertBot(db);
			const chat = await insertChat(db, bot.id, 777);
			queued = [];
			for (const text of ["queued at the backup 1", "queued at the backup 2"]) queued.push((await enqueueMessage(db, { chat_id: chat.id, text, sent_by: "user:1" })).message.id);
		} finally {
			await db.close();
		}
		expect(migrate(dataDir, "restored").status).toBe(2); // --above is required
		const run = migrate(dataDir, "restored", "--above", "9000");
		expect(run.status).toBe(0);
		expect(run.output).toContain("Event counter raised from 5002 to 9000");
		expect(run.output).toContain("2 message(s) queued at the backup failed (may_have_been_delivered): none is sent again");
		const after = await openDatabase(`sqlite:${join(dataDir, "gateway.sqlite")}`);
		try {
			expect(await after.models.OutboundQueueItem.count()).toBe(0);
			const rows = await after.models.Message.findAll({ where: { id: queued }, order: [["id", "ASC"]], raw: true });
			expect(rows.map((r) => [r.status, Number(r.seq) > 9000])).toEqual([["failed", true], ["failed", true]]);
			expect(JSON.parse(String(rows[0]!.error))).toMatchObject({ code: "CONFLICT", details: { may_have_been_delivered: true } });
			const [events] = await after.sequelize.query(`SELECT type FROM events WHERE message_id IN (${queued.join(", ")}) ORDER BY seq`);
			expect((events as Array<{ type: string }>).map((e) => e.type)).toEqual(["outgoing_message", "outgoing_message"]);
		} finally {
			await after.close();
		}
		expect(migrate(dataDir, "restored", "--above", "9000").output).toContain("No message was queued at the backup");
	}, 60_000);

	it.each([[["seq"]], [["seq", "--above", "9000"]], [["status"]], [["down", "--step", "1"]]])("%j where DATA_DIR holds no database says so and makes nothing there (exit 1); only `up` makes one", (args) => {
		const empty = tempDir("tgw-migrate-");
		const run = migrate(empty, ...args);
		expect(run.status).toBe(1);
		expect(run.output).toMatch(/there is no gateway database at .*tgw-migrate-.*check DATA_DIR/);
		expect(readdirSync(empty)).toEqual([]);
	}, 30_000);

	it.each([[["seq", "--above", "-1"]], [["seq", "--above", "1e3"]], [["seq", "--abov", "3"]]])("%j is a usage error (exit 2) and changes nothing", (args) => {
		const run = migrate(dataDir, ...args);
		expect(run.status).toBe(2);
		expect(run.output).toMatch(/usage: npm run migrate/);
	}, 30_000);
});

describe("npm run cli with MIGRATE_ON_START=false", () => {
	it("does not migrate the schema itself: it says to run npm run migrate, and changes nothing", async () => {
		const dataDir = tempDir("tgw-cli-");
		await (await openDatabase(`sqlite:${join(dataDir, "gateway.sqlite")}`)).close();
		const run = script("cli.ts", dataDir, ["user", "list"], { MIGRATE_ON_START: "false" });
		expect(run.status).toBe(1);
		expect(run.output).toMatch(/schema is behind this build.*`npm run migrate -- up`/);
		expect(migrate(dataDir, "status").output).toMatch(/executed: -/);
	}, 30_000);
});


describe("npm run cli", () => {
	const dataDir = tempDir("tgw-cli-");
	const cli = (...args: string[]) => script("cli.ts", dataDir, args, { ADMIN_PASSWORD: "cli-admin-password" });

	beforeAll(() => {
		expect(migrate(dataDir, "up").status).toBe(0);
	}, 30_000);

	it("lists every user, page after page (it stopped at the first 200)", async () => {
		const db = await openDatabase(`sqlite:${join(dataDir, "gateway.sqlite")}`);
		try {
			const now = new Date();
			await db.models.User.bulkCreate(Array.from({ length: 230 }, (_, i) => ({ username: `bulk-${String(i).padStart(3, "0")}`, email: null, password_hash: "x", last_login_at: null, created_at: now, updated_at: now })));
		} finally {
			await db.close();
		}
		const run = cli("user", "list");
		expect(run.status).toBe(0);
		expect(run.output.split("\n").filter((line) => /\bbulk-\d{3}\b/.test(line))).toHaveLength(230);
	}, 60_000);

	it.each([["0x10"], ["1e3"], ["-1"], ["1.5"]])("apikey revoke %s is a usage error (exit 2), not a revocation of another id", (id) => {
		const run = cli("apikey", "revoke", id);
		expect(run.status).toBe(2);
		expect(run.output).toMatch(id === "-1" ? /error: Unknown option '-1'/ : /apikey revoke needs the key's id/);
	}, 30_000);

	it("takes the REPL's words too (users, apikeys), and its help shows both", () => {
		const users = cli("users", "list");
		expect(users.status).toBe(0);
		expect(users.output).toMatch(/^id +username/);
		const keys = cli("apikeys", "list");
		expect(keys.status).toBe(0);
		expect(keys.output).toMatch(/^id +user_id +name/);
		const help = cli("--help");
		expect(help.output).toMatch(/^ {2}user\|users list$/m);
		expect(help.output).toMatch(/^ {2}apikey\|apikeys revoke <id>$/m);
		expect(cli("userz", "list").status).toBe(2);
	}, 60_000);

	it("with no database where DATA_DIR (or DATABASE_URL) points, it says so and makes nothing there (exit 1)", () => {
		const empty = tempDir("tgw-cli-");
		const mistyped: Array<Record<string, string>> = [{ DATA_DIR: empty }, { DATA_DIR: dataDir, DATABASE_URL: `sqlite:${join(empty, "typo.sqlite")}` }];
		for (const env of mistyped) {
			const run = script("cli.ts", dataDir, ["user", "create", "--username", "lost", "--password-stdin"], { ADMIN_PASSWORD: "cli-admin-password", ...env });
			expect(run.status).toBe(1);
			expect(run.output).toMatch(/there is no gateway database at .*tgw-cli-.*check DATA_DIR \(or DATABASE_URL\)/);
			expect(readdirSync(empty)).toEqual([]);
		}
		expect(cli("user", "list").output).not.toMatch(/\blost\b/);
	}, 60_000);

	it.each([
		[["users", "list", "foo"], /unexpected argument "foo"/],
		[["apikey", "revoke", "3", "4"], /unexpected argument "4"/],
		[["apikey", "create", "--user", "admin", "--name", "x", "--rate-limit", "1e3"], /--rate-limit needs a whole number/],
		[["userz", "list"], /unknown command "userz list"/],
	])("%j is a usage error (exit 2), checked before any database is opened or made", (args, message) => {
		const empty = tempDir("tgw-cli-");
		const run = script("cli.ts", empty, args, { ADMIN_PASSWORD: "cli-admin-password" });
		expect(run.status).toBe(2);
		expect(run.output).toMatch(message);
		expect(readdirSync(empty)).toEqual([]);
	}, 30_000);

	it("a failure that is not the API's names its cause (a database that refuses connections), not 'Internal server error'", () => {
		const run = script("cli.ts", tempDir("tgw-cli-"), ["user", "list"], { DATABASE_URL: "mysql://root@127.0.0.1:1/test" });
		expect(run.status).toBe(1);
		expect(run.output).toMatch(/ECONNREFUSED|connect/i);
		expect(run.output).not.toContain("Internal server error");
	}, 30_000);
});
