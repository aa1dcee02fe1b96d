/**
 * A periodic job whose run may outlast its period (re-checking every live connection's credential
 * against a slow or busy auth): a tick that finds the previous run still going is skipped, so runs
 * never pile up on top of each other. `overran` is told once per run that made a tick skip.
 */
export function skipWhileRunning(run: () => Promise<void>, overran: (runningForMs: number) => void, now: () => number = Date.now): () => Promise<void> {
	let startedAt: number | undefined;
	let told = false;
	return async () => {
		if (startedAt !== undefined) {
			if (!told) overran(now() - startedAt);
			told = true;
			return;
		}
		startedAt = now();
		told = false;
		try {
			await run();
		} finally {
			startedAt = undefined;
		}
	};
}
