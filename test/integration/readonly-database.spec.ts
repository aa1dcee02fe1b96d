/**
 * A SQLite file the node may not write: SQLite would open it read-only without a word, and every
 * write then failed as "Database is unavailable" while /ready said ok. The node refuses to start,
 * naming the file and DATA_DIR. (As root every file is writable: the node runs as nobody here.)
 */
import { spawnSync } from "node:child_process";
import { chmodSync, closeSync, openSync } from "node:fs";
import { join } from "node:path";
import { tempDir } from "../support/harness";
import { GATEWAY_NODE_FLAGS } from "../support/processes";

const ROOT = join(__dirname, "..", "..");
const asRoot = typeof process.getuid === "function" && process.getuid() === 0;
const canDropPrivileges = asRoot && spawnSync("setpriv", ["--version"]).status === 0;

(canDropPrivileges || !asRoot ? describe : describe.skip)("a database file the node may not write", () => {
	it("refuses to start (exit 1), naming the file and DATA_DIR", () => {
		const dataDir = tempDir("tgw-readonly-");
		chmodSync(dataDir, 0o777);
		const file = join(dataDir, "gateway.sqlite");
		closeSync(openSync(file, "a", 0o444));
		chmodSync(file, 0o444);
		const node = [process.execPath, ...GATEWAY_NODE_FLAGS, "--import", "tsx", join(ROOT, "bin", "gateway.ts")];
		const command = asRoot ? ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", ...node] : node;
		const run = spawnSync(command[0]!, command.slice(1), {
			cwd: ROOT,
			env: { PATH: process.env.PATH ?? "", HOME: dataDir, DATA_DIR: dataDir, PORT: "0", GRPC_PORT: "0", LOG_LEVEL: "warn" },
			encoding: "utf8",
			timeout: 60_000,
		});
		const output = `${run.stdout}${run.stderr}`;
		expect({ status: run.status, output }).toMatchObject({ status: 1 });
		expect(output).toMatch(new RegExp(`Cannot reach the database at sqlite:${file.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&")} \\(DATA_DIR\\): ${file.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&")} is not writable by this process`));
	}, 90_000);
});
