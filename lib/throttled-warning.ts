/**
 * Warnings that an outage would repeat on every request (a store away, 503 answers): said at once,
 * then at most once per interval per logger and topic, with how often it happened meanwhile, so a
 * flood of requests cannot flood the log.
 */
interface Tally {
	count: number;
	loggedAt: number;
}

const tallies = new WeakMap<object, Map<string, Tally>>();

export const WARN_EVERY_MS = 10_000;

export function warnAtMostEvery(logger: { warn(...args: unknown[]): void }, topic: string, message: string, everyMs = WARN_EVERY_MS, now = Date.now()): void {
	let byTopic = tallies.get(logger);
	if (!byTopic) {
		byTopic = new Map();
		tallies.set(logger, byTopic);
	}
	const tally = byTopic.get(topic) ?? { count: 0, loggedAt: -Infinity };
	byTopic.set(topic, tally);
	tally.count += 1;
	if (now - tally.loggedAt < everyMs) return;
	logger.warn(tally.count === 1 ? message : `${message} (${tally.count} times since the last report)`);
	tally.loggedAt = now;
	tally.count = 0;
}
