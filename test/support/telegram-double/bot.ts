/** One bot's state in the double: its User, pending updates (bounded, in arrival order), webhook settings, poller, push log. */
import type { ApiError } from "./http";
import type { BotUser, PushAttempt, Update, WebhookConfig } from "./types";

/** Update kinds Telegram leaves out unless allowed_updates names them. */
export const OPT_IN_KINDS: readonly string[] = ["chat_member", "message_reaction", "message_reaction_count"];

export const updateKinds = (update: Update): string[] => Object.keys(update).filter((key) => key !== "update_id");

/** Whether `allowed` (absent or empty: Telegram's default) lets the update through. Unknown future kinds pass the default. */
export function isAllowed(update: Update, allowed: readonly string[] | undefined): boolean {
	const kinds = updateKinds(update);
	if (kinds.length === 0) return true;
	if (!allowed || allowed.length === 0) return kinds.some((kind) => !OPT_IN_KINDS.includes(kind));
	return kinds.some((kind) => allowed.includes(kind));
}

/** A getUpdates call that is waiting for updates. */
export interface Poller {
	/** New updates may be there: answer if any passes. */
	wake(): void;
	/** Answer with this error now (setWebhook while polling). */
	cancel(error: ApiError): void;
}

export function pushBounded<T>(list: T[], item: T, cap: number): void {
	list.push(item);
	if (list.length > cap) list.splice(0, list.length - cap);
}

export class BotState {
	/** Not yet delivered (webhook 2xx) nor confirmed (getUpdates offset), oldest first. */
	readonly pending: Update[] = [];
	/** Updates left out by allowed_updates: stored here, never delivered. */
	readonly skipped: Update[] = [];
	/** Pending updates dropped because the queue was full. */
	dropped = 0;
	nextUpdateId: number;
	/** The last allowed_updates given to setWebhook or getUpdates; Telegram keeps it until changed. */
	allowedUpdates: string[] | undefined;
	webhook: WebhookConfig | null = null;
	lastError: { date: number; message: string } | undefined;
	readonly pushLog: PushAttempt[] = [];
	poller: Poller | null = null;

	constructor(
		/** The bot's current token: a revoke at BotFather (TelegramDouble.revokeToken) gives it a new one. */
		public token: string,
		readonly user: BotUser,
		private readonly cap: number,
		firstUpdateId: number,
	) {
		this.nextUpdateId = firstUpdateId;
	}

	/** Adds an update (update_id assigned when missing, kept when given) and returns it. */
	enqueue(partial: Partial<Update>): Update {
		const update: Update = { ...partial, update_id: partial.update_id ?? this.nextUpdateId };
		const { update_id, ...kinds } = update;
		const ordered: Update = { update_id, ...kinds };
		this.nextUpdateId = Math.max(this.nextUpdateId, update_id + 1);
		this.pending.push(ordered);
		if (this.pending.length > this.cap) {
			this.pending.shift();
			this.dropped++;
		}
		return ordered;
	}

	remove(update: Update): void {
		const index = this.pending.indexOf(update);
		if (index >= 0) this.pending.splice(index, 1);
	}

	skip(update: Update): void {
		this.remove(update);
		pushBounded(this.skipped, update, this.cap);
	}

	/** getUpdates' `offset`: forget every update below it; a negative one keeps only the last -offset updates. */
	confirm(offset: number): void {
		if (offset < 0) this.pending.splice(0, Math.max(0, this.pending.length + offset));
		else {
			const kept = this.pending.filter((update) => update.update_id >= offset);
			this.pending.length = 0;
			this.pending.push(...kept);
		}
	}

	/** What getUpdates answers now: the first `limit` pending updates from `minId` on that allowed_updates lets through (the others are skipped). */
	poll(limit: number, minId = -Infinity): Update[] {
		const out: Update[] = [];
		for (const update of [...this.pending]) {
			if (out.length >= limit) break;
			if (update.update_id < minId) continue;
			if (isAllowed(update, this.allowedUpdates)) out.push(update);
			else this.skip(update);
		}
		return out;
	}

	logPush(attempt: PushAttempt): void {
		pushBounded(this.pushLog, attempt, this.cap);
	}
}
