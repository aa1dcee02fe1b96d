/**
 * One embedded gateway per database file (lib/data-dir-lock.ts): a second waits, then refuses; a
 * lock left by a crashed run of this host is taken over at once, one of another host once stale.
 */
import { spawnSync } from "node:child_process";
import { existsSync, utimesSync, writeFileSync } from "node:fs";
import { hostname } from "node:os";
import { join } from "node:path";
import { DataDirInUseError, lockDatabaseFile } from "../../lib/data-dir-lock";
import { tempDir } from "../support/harness";

const leftBy = (file: string, host: string, pid: number) => writeFileSync(`${file}.node-lock`, JSON.stringify({ host, pid }));

describe("lockDatabaseFile", () => {
	it("a file held by a running process (this host's, or a fresh lock of another host) is waited for, then refused naming the holder", async () => {
		for (const [host, pid] of [[hostname(), process.ppid], ["another-host", 4242]] as const) {
			const file = join(tempDir(), "gateway.sqlite");
			leftBy(file, host, pid);
			const waited: string[] = [];
			const locking = lockDatabaseFile(file, { waitMs: 200, retryMs: 50, onWaiting: (holder) => waited.push(holder) });
			await expect(locking).rejects.toBeInstanceOf(DataDirInUseError);
			await expect(locking).rejects.toThrow(new RegExp(`another gateway \\(${host} pid ${pid}\\) runs on this database .*: run one embedded gateway per DATA_DIR`));
			expect(waited).toEqual([`${host} pid ${pid}`]);
		}
	});

	it("takes over at once a lock of a gone run of this host, or a stale one of another host; release removes its own", async () => {
		const exited = spawnSync(process.execPath, ["-e", "0"]).pid;
		// A gone pid, or this process's own (a container restarted in place starts again as pid 1).
		for (const stale of [(file: string) => leftBy(file, hostname(), exited), (file: string) => leftBy(file, hostname(), process.pid), (file: string) => {
			leftBy(file, "another-host", 4242);
			const old = new Date(Date.now() - 60_000);
			utimesSync(`${file}.node-lock`, old, old);
		}]) {
			const file = join(tempDir(), "gateway.sqlite");
			stale(file);
			const lock = await lockDatabaseFile(file, { waitMs: 0 });
			lock.release();
			expect(existsSync(`${file}.node-lock`)).toBe(false);
		}
	});

});
