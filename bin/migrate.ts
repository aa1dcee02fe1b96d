/**
 * `npm run migrate -- up | down [--to <name>|0] [--step <n>] [--discard] | status | seq [--above <n>] | restored --above <n>`:
 * the schema by hand, and what a restore from a backup needs before the nodes start.
 */
import { parseArgs } from "node:util";
import { loadConfig, missingSqliteFile } from "../lib/config";
import { openDatabase } from "../lib/db/connection";
import { createMigrator, migrateDown, migrateUp, NotAppliedError, unknownMigrations } from "../lib/db/migrator";
import { failQueuedAtBackup } from "../services/bots/send-records";
import { raiseSeqFloor, seqStanding } from "../services/broker/event-log";

const USAGE = "usage: npm run migrate -- up | down [--to <name>|0 | --step <n>] [--discard] | status | seq [--above <n>] | restored --above <n>   (--help for more)";

// umzug's `to` is inclusive when reverting: said here and before acting, since "down to X" reads as keeping X.
const HELP = `usage: npm run migrate -- <command>
  up                  apply every pending migration
  status              list the executed and pending migrations (and any this build does not know)
  down                revert the newest applied migration
  down --step <n>     revert the newest <n>
  down --to <name>    revert every migration applied after <name>, AND <name> itself (inclusive,
                      as umzug's --to): to keep <name>, give the one applied after it
  down --to 0         revert every migration
  down ... --discard  revert even what drops data applying the migrations again cannot bring back
                      (Idempotency-Keys of sent messages, ended API key secrets); without it such a
                      down refuses and names what it would drop. A migration whose data the older
                      schema cannot hold (users with roles, business chats) is never reverted.
  seq                 the event log's counter (the last seq handed out) and its highest stored seq
  seq --above <n>     hand out seqs above <n> from now on (after restoring a backup: <n> at least
                      the highest seq consumers saw before); never lowers the counter
  restored --above <n>
                      after restoring a backup, before the nodes start: seq --above <n>, and every
                      message the backup holds as queued fails (may_have_been_delivered: it may
                      have gone out after the backup) instead of being sent again
Every migration down would revert is checked first: it reverts all of them or none.
What down will revert is printed before anything is.`;

class UsageError extends Error {}

function reportRaise({ before, after }: { before: number; after: number }, floor: number): void {
	console.log(after > before ? `Event counter raised from ${before} to ${after}: the next event gets seq ${after + 1}` : `Event counter left at ${before} (already at or above ${floor})`);
}

/** `seq`'s `--above <n>` (a non-negative integer), or null to only show the counter. */
function seqFloor(args: string[]): number | null {
	const { values } = parseArgs({ args, options: { above: { type: "string" } }, strict: true, allowPositionals: false });
	if (values.above === undefined) return null;
	const floor = Number(values.above);
	if (!/^\d{1,16}$/.test(values.above) || !Number.isSafeInteger(floor)) throw new UsageError(`--above must be a non-negative integer, got "${values.above}"`);
	return floor;
}

/** What to revert: `--to <name>` (0 for everything) or `--step <n>` (a positive integer; 1 by default), and whether `--discard` was given. */
function downTarget(args: string[]): ({ to: string | 0 } | { step: number }) & { discard: boolean } {
	// Strict: an unknown or misspelt option (--setp 3) must not fall back to reverting one migration.
	const { values } = parseArgs({ args, options: { to: { type: "string" }, step: { type: "string" }, discard: { type: "boolean" } }, strict: true, allowPositionals: false });
	const discard = values.discard ?? false;
	if (values.to !== undefined && values.step !== undefined) throw new UsageError("give --to or --step, not both");
	if (values.to !== undefined) {
		if (values.to.trim() === "") throw new UsageError("--to needs a migration name, or 0 for all of them");
		return { to: values.to === "0" ? 0 : values.to, discard };
	}
	if (values.step === undefined) return { step: 1, discard };
	if (!/^[1-9]\d{0,3}$/.test(values.step)) throw new UsageError(`--step must be a positive integer, got "${values.step}"`);
	return { step: Number(values.step), discard };
}

async function main(): Promise<void> {
	const [command, ...args] = process.argv.slice(2);
	// No default command: migrating is a deliberate step (MIGRATE_ON_START=false), not what a bare
	// `npm run migrate`, typed to see the usage, should do.
	if (command === undefined) throw new UsageError("give a command");
	if (["help", "--help", "-h"].includes(command) || (command === "down" && args.some((a) => a === "--help" || a === "-h"))) {
		console.log(HELP);
		return;
	}
	if (!["up", "down", "status", "seq", "restored"].includes(command)) throw new UsageError(`unknown command "${command}"`);
	if (!["down", "seq", "restored"].includes(command) && args.length > 0) throw new UsageError(`"${command}" takes no options`);
	const target = command === "down" ? downTarget(args) : null;
	const floor = command === "seq" || command === "restored" ? seqFloor(args) : null;
	if (command === "restored" && floor === null) throw new UsageError("restored needs --above <n>: the highest seq handed out before the restore (docs/operations.md, Backups)");
	// Only `up` makes a database: the others, on a mistyped DATA_DIR, made an empty one (and its
	// secrets) and then failed on its missing tables (`seq --above`, a restore step, said "no such table").
	const missing = command === "up" ? null : missingSqliteFile();
	if (missing !== null) throw new NoDatabaseError(`there is no gateway database at ${missing}: check DATA_DIR (or DATABASE_URL); \`npm run migrate -- up\` (or a first npm start) makes it`);
	const config = loadConfig();
	const db = await openDatabase(config.databaseUrl);
	const logger = { info: (message: string) => console.log(message) };
	try {
		if (command === "up") {
			const applied = await migrateUp(db, logger);
			console.log(applied.length ? `Applied: ${applied.map((m) => m.name).join(", ")}` : "Schema is up to date");
		} else if (target) {
			const onPlan = (names: string[]) => {
				const inclusive = "to" in target && target.to !== 0 ? ` (--to ${target.to} reverts ${target.to} itself too)` : "";
				if (names.length > 0) console.log(`Reverting ${names.length}, newest first: ${names.join(", ")}${inclusive}`);
			};
			const reverted = await migrateDown(db, { ...target, onPlan }, logger);
			console.log(reverted.length ? `Reverted: ${reverted.map((m) => m.name).join(", ")}` : "Nothing to revert");
		} else if (command === "restored") {
			reportRaise(await raiseSeqFloor(db, floor!), floor!);
			const failed = await failQueuedAtBackup(db);
			console.log(failed > 0 ? `${failed} message(s) queued at the backup failed (may_have_been_delivered): none is sent again` : "No message was queued at the backup");
		} else if (command === "seq") {
			if (floor !== null) {
				reportRaise(await raiseSeqFloor(db, floor), floor);
			}
			const { counter, highestStored } = await seqStanding(db);
			console.log(`events: counter ${counter} (the last seq handed out), highest stored seq ${highestStored}`);
		} else {
			const migrator = createMigrator(db);
			console.log("executed:", (await migrator.executed()).map((m) => m.name).join(", ") || "-");
			console.log("pending: ", (await migrator.pending()).map((m) => m.name).join(", ") || "-");
			const unknown = await unknownMigrations(db);
			if (unknown.length > 0) console.log("unknown: ", `${unknown.join(", ")} (newer than this build)`);
		}
	} finally {
		await db.close();
	}
}

class NoDatabaseError extends Error {}

main().catch((err: unknown) => {
	const usage = err instanceof UsageError || err instanceof NotAppliedError || (err as { code?: string }).code?.startsWith("ERR_PARSE_ARGS");
	console.error(usage ? `${(err as Error).message}\n${USAGE}` : (err as Error).message);
	process.exit(usage ? 2 : 1);
});
