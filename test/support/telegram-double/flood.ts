/** Telegram's send limits (https://core.telegram.org/bots/faq#my-bot-is-hitting-limits-how-do-i-avoid-this), sliding windows. */
import type { FloodRefusal } from "./types";

interface Rule {
	scope: FloodRefusal["scope"];
	limit: number;
	windowMs: number;
}

const PER_BOT: Rule = { scope: "bot", limit: 30, windowMs: 1000 };
const PER_PRIVATE_CHAT: Rule = { scope: "private", limit: 1, windowMs: 1000 };
const PER_GROUP: Rule = { scope: "group", limit: 20, windowMs: 60_000 };

export class FloodLimiter {
	/** Accepted send times per key (`bot|<token>` or `chat|<token>|<chat_id>`), only those still inside their window. */
	private readonly windows = new Map<string, number[]>();

	/** The refusal (scope and retry_after in whole seconds) if one more send now would break a limit; else null. */
	check(token: string, chatId: number, now = Date.now()): { scope: FloodRefusal["scope"]; retry_after: number } | null {
		for (const [key, rule] of this.keys(token, chatId)) {
			const times = this.recent(key, rule, now);
			if (times.length >= rule.limit) {
				const freeAt = times[times.length - rule.limit]! + rule.windowMs;
				return { scope: rule.scope, retry_after: Math.max(1, Math.ceil((freeAt - now) / 1000)) };
			}
		}
		return null;
	}

	record(token: string, chatId: number, now = Date.now()): void {
		for (const [key, rule] of this.keys(token, chatId)) {
			const times = this.recent(key, rule, now);
			times.push(now);
			this.windows.set(key, times);
		}
		if (this.windows.size > 10_000) this.sweep(now);
	}

	private keys(token: string, chatId: number): Array<[string, Rule]> {
		return [
			[`bot|${token}`, PER_BOT],
			[`chat|${token}|${chatId}`, chatId > 0 ? PER_PRIVATE_CHAT : PER_GROUP],
		];
	}

	private recent(key: string, rule: Rule, now: number): number[] {
		const times = (this.windows.get(key) ?? []).filter((at) => at > now - rule.windowMs);
		if (times.length === 0) this.windows.delete(key);
		else this.windows.set(key, times);
		return times;
	}

	/** Drops every window with nothing left in it (the longest window is a minute). */
	private sweep(now: number): void {
		for (const [key, times] of this.windows) if (times[times.length - 1]! <= now - PER_GROUP.windowMs) this.windows.delete(key);
	}
}
