/**
 * Warnings that an outage would repeat on every request (a store away, 503 answers): said at once,
 * then at most once per interval per logger and topic, with how often it happened meanwhile, so a
 * flood of requests cannot flood the log.
 */
export const WARN_EVERY_MS = 10_000;

/** One OutageNotice per logger and topic; a topic's outage is never declared over, only reminded of. */
const notices = new WeakMap<object, Map<string, OutageNotice>>();

export function warnAtMostEvery(logger: { warn(...args: unknown[]): void }, topic: string, message: string, everyMs = WARN_EVERY_MS, now = Date.now()): void {
	let byTopic = notices.get(logger);
	if (!byTopic) {
		byTopic = new Map();
		notices.set(logger, byTopic);
	}
	let notice = byTopic.get(topic);
	if (!notice) {
		notice = new OutageNotice({ warn: (...args) => logger.warn(...args), info: () => undefined }, everyMs);
		byTopic.set(topic, notice);
	}
	notice.failed(message, now);
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
