/**
 * MySQL/MariaDB roll a transaction back when it deadlocks with another or waits too long for a
 * lock (SQLite, with one writer, never does): the work is done again, from the start, a few times.
 */
import { isDbConflict } from "../errors";

/** How often a transaction rolled back by a deadlock or lock wait timeout is run. */
export const CONFLICT_ATTEMPTS = 3;

export async function retryingConflicts<T>(work: () => Promise<T>, attempts = CONFLICT_ATTEMPTS): Promise<T> {
	for (let attempt = 1; ; attempt++) {
		try {
			return await work();
		} catch (err) {
			if (attempt >= attempts || !isDbConflict(err)) throw err;
		}
	}
}
