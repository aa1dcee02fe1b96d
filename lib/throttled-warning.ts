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

/**
 * A condition that lasts (a service no node runs) and is hit over and over meanwhile: warned when
 * it begins, reminded at most every `everyMs` with how often it happened, and said once when it ends.
 */
export class OutageNotice {
	private count = 0;
	private loggedAt = -Infinity;
	private down = false;

	constructor(
		private readonly logger: { warn(...args: unknown[]): void; info(...args: unknown[]): void },
		private readonly everyMs = WARN_EVERY_MS,
	) {}

	failed(message: string, now = Date.now()): void {
		this.count += 1;
		if (this.down && now - this.loggedAt < this.everyMs) return;
		this.logger.warn(this.down && this.count > 1 ? `${message} (${this.count} times since the last report)` : message);
		this.down = true;
		this.loggedAt = now;
		this.count = 0;
	}

	recovered(message: string): void {
		if (!this.down) return;
		this.down = false;
		this.count = 0;
		this.logger.info(message);
	}
}
