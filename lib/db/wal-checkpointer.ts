/**
 * SQLite's WAL is copied back into the database file by a checkpoint, which by default runs inside
 * the commit that takes the log past 1,000 pages: that commit (and every write queued behind it on
 * the one write connection) waits 15-25 ms while the pages are copied and both files synced. Under
 * load that is several times a second, and it is most of a live update's p99. Here the checkpoints
 * run on a connection of their own, PASSIVE (they neither wait for nor block readers and writers),
 * shortly after writes; each connection's own automatic checkpoint stays only as a backstop for a
 * log these cannot keep short (a reader pinning an old snapshot).
 */
import { Database as SqliteConnection, OPEN_READWRITE } from "sqlite3";

/** Pages past which a connection's commit checkpoints by itself (SQLite's default is 1,000). */
export const BACKSTOP_AUTOCHECKPOINT_PAGES = 10_000;

export interface CheckpointResult {
	/** Pages in the log. */
	log: number;
	/** Pages of it now in the database file. */
	checkpointed: number;
}

export class WalCheckpointer {
	private readonly connection: SqliteConnection;
	private timer: NodeJS.Timeout | undefined;
	private running: Promise<void> | undefined;
	private closed = false;
	/** Writes were committed since the last checkpoint began (or it left pages behind). */
	private dirty = false;

	constructor(
		storage: string,
		private readonly delayMs = 100,
		private readonly onError: (err: Error) => void = () => undefined,
	) {
		// With a callback, a failed open is reported there rather than thrown as an 'error' event;
		// statements on a connection that did not open never answer, so none is sent after that.
		this.connection = new SqliteConnection(storage, OPEN_READWRITE, (err) => {
			if (!err) return;
			this.closed = true;
			onError(err);
		});
		this.connection.configure("busyTimeout", 1_000);
	}

	/** Called after a write commits: a checkpoint follows within `delayMs`, one at a time. */
	noteWrite(): void {
		this.dirty = true;
		if (this.timer === undefined && this.running === undefined && !this.closed) this.schedule();
	}

	/** One PASSIVE checkpoint now (tests, and the timer). */
	checkpoint(): Promise<CheckpointResult> {
		return new Promise((resolve, reject) =>
			this.connection.get("PRAGMA wal_checkpoint(PASSIVE)", (err: Error | null, row: { busy: number; log: number; checkpointed: number }) =>
				err ? reject(err) : resolve({ log: row.log, checkpointed: row.checkpointed }),
			),
		);
	}

	async close(): Promise<void> {
		const opened = !this.closed;
		this.closed = true;
		clearTimeout(this.timer);
		this.timer = undefined;
		await this.running;
		if (opened) await new Promise<void>((resolve) => this.connection.close(() => resolve()));
	}

	private schedule(): void {
		this.timer = setTimeout(() => {
			this.timer = undefined;
			this.dirty = false;
			this.running = this.checkpoint()
				.then(({ log, checkpointed }) => {
					// A reader still on an older snapshot keeps the rest: try again later.
					if (checkpointed >= 0 && checkpointed < log) this.dirty = true;
				})
				.catch((err: Error) => this.onError(err))
				.finally(() => {
					this.running = undefined;
					if (this.dirty && !this.closed) this.schedule();
				});
		}, this.delayMs);
		this.timer.unref();
	}
}
