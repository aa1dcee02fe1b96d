/**
 * One embedded gateway per database file. Two started on one DATA_DIR both ran: both long-polled
 * every bot (Telegram answered each 409) and paced sends apart (429s). A node holds a lock file
 * beside the database while it runs; another waits for it, then refuses to start. A lock left by a
 * run that crashed on this host is taken over at once; one of another host (a shared volume) once
 * it has not been refreshed for LOCK_STALE_MS.
 */
import { readFileSync, statSync, unlinkSync, utimesSync, writeFileSync } from "node:fs";
import { hostname } from "node:os";
import { sleep } from "./async";
import { processStanding } from "./local-process";

const LOCK_STALE_MS = 30_000;
const REFRESH_MS = 10_000;
const WAIT_MS = 10_000;

export class DataDirInUseError extends Error {
	constructor(lockPath: string, holder: string) {
		super(`another gateway (${holder}) runs on this database (${lockPath}): run one embedded gateway per DATA_DIR; for more nodes, run a cluster (README, "Modes")`);
		this.name = "DataDirInUseError";
	}
}

export interface DataDirLock {
	release(): void;
}

interface Holder {
	host: string;
	pid: number;
}

function readHolder(path: string): Holder | null {
	try {
		const parsed = JSON.parse(readFileSync(path, "utf8")) as Partial<Holder>;
		return typeof parsed.host === "string" && Number.isSafeInteger(parsed.pid) ? { host: parsed.host, pid: parsed.pid! } : null;
	} catch {
		return null; // gone meanwhile, or being written
	}
}

export async function lockDatabaseFile(
	databaseFile: string,
	options: { waitMs?: number; retryMs?: number; onWaiting?(holder: string): void } = {},
): Promise<DataDirLock> {
	const path = `${databaseFile}.node-lock`;
	const mine = JSON.stringify({ host: hostname(), pid: process.pid });
	const deadline = Date.now() + (options.waitMs ?? WAIT_MS);
	let told = false;
	for (;;) {
		try {
			writeFileSync(path, mine, { flag: "wx", mode: 0o600 });
			break;
		} catch (err) {
			if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
		}
		const holder = readHolder(path);
		let age: number;
		try {
			age = Date.now() - statSync(path).mtimeMs;
		} catch {
			continue; // released meanwhile
		}
		const standing = holder ? processStanding(holder.host, holder.pid) : "elsewhere";
		if (standing === "gone" || (standing === "elsewhere" && age > LOCK_STALE_MS)) {
			try {
				unlinkSync(path);
			} catch {
				// another newcomer took it over first
			}
			continue;
		}
		const who = holder ? `${holder.host} pid ${holder.pid}` : "unknown";
		if (Date.now() >= deadline) throw new DataDirInUseError(path, who);
		if (!told) options.onWaiting?.(who);
		told = true;
		await sleep(options.retryMs ?? 500);
	}
	const refresh = setInterval(() => {
		const now = new Date();
		try {
			utimesSync(path, now, now);
		} catch {
			// removed under us: the next start of another node may take it
		}
	}, REFRESH_MS);
	refresh.unref();
	return {
		release() {
			clearInterval(refresh);
			try {
				if (readFileSync(path, "utf8") === mine) unlinkSync(path);
			} catch {
				// already gone
			}
		},
	};
}
