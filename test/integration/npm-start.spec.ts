/**
 * `npm start` as a supervisor runs it: a SIGTERM sent to npm's own process stops the gateway.
 * npm signals its shell, and a shell that ran node as its child left the gateway running without
 * a parent, still holding PORT (the next start failed with EADDRINUSE).
 */
import { spawn } from "node:child_process";
import { rmSync } from "node:fs";
import { join } from "node:path";
import { tempDir } from "../support/harness";
import { freePort } from "../support/processes";
import { pause } from "../support/realtime-clients";

const ROOT = join(__dirname, "..", "..");

async function answers(url: string): Promise<boolean> {
	try {
		return (await fetch(url, { signal: AbortSignal.timeout(1_000) })).ok;
	} catch {
		return false;
	}
}

async function within(ms: number, check: () => Promise<boolean>): Promise<boolean> {
	const end = Date.now() + ms;
	while (Date.now() < end) {
		if (await check()) return true;
		await pause(200);
	}
	return false;
}

describe("npm start", () => {
	it("stops the gateway when npm itself is sent SIGTERM", async () => {
		const dataDir = tempDir("tgw-npm-start-");
		const port = await freePort();
		const npm = spawn("npm", ["start"], {
			cwd: ROOT,
			env: { PATH: process.env.PATH ?? "", HOME: process.env.HOME ?? "", DATA_DIR: dataDir, PORT: String(port), GRPC_PORT: String(await freePort()), LOG_LEVEL: "warn" },
			stdio: "ignore",
			// Its own process group: whatever npm leaves behind is killed with it at the end.
			detached: true,
		});
		const ready = `http://127.0.0.1:${port}/ready`;
		try {
			expect(await within(45_000, () => answers(ready))).toBe(true);
			npm.kill("SIGTERM");
			expect(await within(15_000, async () => !(await answers(`http://127.0.0.1:${port}/health`)))).toBe(true);
		} finally {
			try {
				process.kill(-npm.pid!, "SIGKILL");
			} catch {
				// the group is gone already
			}
			rmSync(dataDir, { recursive: true, force: true });
		}
	}, 75_000);
});
