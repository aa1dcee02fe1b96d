/** `npm run migrate` (bin/migrate.ts): a mistyped revert stops with a usage error and reverts nothing. */
import { spawnSync } from "node:child_process";
import { join } from "node:path";
import { tempDir } from "../support/harness";

const ROOT = join(__dirname, "..", "..");

function migrate(dataDir: string, ...args: string[]) {
	const run = spawnSync(process.execPath, ["--import", "tsx", join(ROOT, "bin", "migrate.ts"), ...args], {
		cwd: ROOT,
		env: { PATH: process.env.PATH ?? "", HOME: process.env.HOME ?? "", DATA_DIR: dataDir },
		encoding: "utf8",
		timeout: 30_000,
	});
	return { status: run.status, output: `${run.stdout}${run.stderr}` };
}

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
	])("%j is a usage error (exit 2) and reverts nothing", (args) => {
		const run = migrate(dataDir, ...args);
		expect(run.status).toBe(2);
		expect(run.output).toMatch(/usage: npm run migrate/);
		expect(migrate(dataDir, "status").output).toMatch(/pending: {2}-/);
	}, 30_000);

	it("down --step 2 reverts two, and up applies them again", () => {
		expect(migrate(dataDir, "down", "--step", "2").output).toMatch(/Reverted: 0007-message-client-request, 0006-delivery-due-lookups/);
		expect(migrate(dataDir, "up").output).toMatch(/Applied: 0006-delivery-due-lookups, 0007-message-client-request/);
	}, 30_000);
});
