/** `npm run migrate -- up | down [--to <name>|0] [--step <n>] | status`: the schema by hand. */
import { loadConfig } from "../lib/config";
import { openDatabase } from "../lib/db/connection";
import { createMigrator, migrateDown, migrateUp } from "../lib/db/migrator";

function option(args: string[], name: string): string | undefined {
	const i = args.indexOf(name);
	return i >= 0 ? args[i + 1] : undefined;
}

async function main(): Promise<void> {
	const [command = "up", ...args] = process.argv.slice(2);
	const config = loadConfig();
	const db = await openDatabase(config.databaseUrl);
	const logger = { info: (message: string) => console.log(message) };
	try {
		if (command === "up") {
			const applied = await migrateUp(db, logger);
			console.log(applied.length ? `Applied: ${applied.map((m) => m.name).join(", ")}` : "Schema is up to date");
		} else if (command === "down") {
			const to = option(args, "--to");
			const step = option(args, "--step");
			const reverted = await migrateDown(db, to !== undefined ? { to: to === "0" ? 0 : to } : { step: step ? Number(step) : 1 }, logger);
			console.log(reverted.length ? `Reverted: ${reverted.map((m) => m.name).join(", ")}` : "Nothing to revert");
		} else if (command === "status") {
			const migrator = createMigrator(db);
			console.log("executed:", (await migrator.executed()).map((m) => m.name).join(", ") || "-");
			console.log("pending: ", (await migrator.pending()).map((m) => m.name).join(", ") || "-");
		} else {
			console.error(`Unknown command "${command}": use up, down or status`);
			process.exitCode = 2;
		}
	} finally {
		await db.close();
	}
}

main().catch((err: unknown) => {
	console.error((err as Error).message);
	process.exit(1);
});
