/**
 * Pushes one bot's pending updates to its webhook, as Telegram does: JSON POST, the secret header, at most
 * max_connections at once (strictly in order with 1), every non-2xx or network error retried with exponential backoff.
 */
import { isAllowed, type BotState } from "./bot";
import type { Update } from "./types";
import { unixNow } from "./world";

export interface PushTiming {
	redeliveryDelayMs: number;
	maxRedeliveryDelayMs: number;
	pushTimeoutMs: number;
}

/** Telegram's wording for webhook failures in getWebhookInfo.last_error_message. */
function describeFailure(error: unknown, timedOut: boolean): string {
	if (timedOut) return "Connection timed out";
	const cause = (error as { cause?: { code?: string; message?: string } }).cause;
	if (cause?.code === "ECONNREFUSED") return "Connection refused";
	if (cause?.code === "ECONNRESET" || cause?.code === "UND_ERR_SOCKET") return "Connection reset by peer";
	return cause?.message ?? (error instanceof Error ? error.message : String(error));
}

export class WebhookPusher {
	private readonly inFlight = new Set<Update>();
	private readonly retries = new Map<Update, { attempts: number; notBefore: number }>();
	private readonly aborts = new Set<AbortController>();
	private readonly running = new Set<Promise<void>>();
	private timer: NodeJS.Timeout | undefined;
	private timerAt = Infinity;
	private stopped = false;

	constructor(
		private readonly bot: BotState,
		private readonly timing: PushTiming,
	) {}

	/** Forget backoff state (a new webhook URL is tried at once). */
	reset(): void {
		this.retries.clear();
		this.clearTimer();
	}

	/** Starts every push the limits allow now, and schedules a wake-up for the earliest backoff that ends. */
	pump(): void {
		const webhook = this.bot.webhook;
		if (this.stopped || !webhook) return;
		const now = Date.now();
		const inOrder = webhook.max_connections === 1;
		let wakeAt = Infinity;
		for (const update of [...this.bot.pending]) {
			if (this.inFlight.size >= webhook.max_connections) break;
			if (this.inFlight.has(update)) continue;
			if (!isAllowed(update, this.bot.allowedUpdates)) {
				this.bot.skip(update);
				continue;
			}
			const retry = this.retries.get(update);
			if (retry && retry.notBefore > now) {
				wakeAt = Math.min(wakeAt, retry.notBefore);
				if (inOrder) break;
				continue;
			}
			const push = this.push(update, webhook.url, webhook.secret_token, webhook.generation).finally(() => this.running.delete(push));
			this.running.add(push);
		}
		if (wakeAt < this.timerAt) {
			this.clearTimer();
			this.timerAt = wakeAt;
			this.timer = setTimeout(() => {
				this.timer = undefined;
				this.timerAt = Infinity;
				this.pump();
			}, wakeAt - now);
		}
	}

	private async push(update: Update, url: string, secret: string | undefined, generation: number): Promise<void> {
		this.inFlight.add(update);
		const abort = new AbortController();
		this.aborts.add(abort);
		let timedOut = false;
		const timeout = setTimeout(() => {
			timedOut = true;
			abort.abort();
		}, this.timing.pushTimeoutMs);
		let status: number | undefined;
		let error: string | undefined;
		try {
			const headers: Record<string, string> = { "content-type": "application/json" };
			if (secret !== undefined) headers["x-telegram-bot-api-secret-token"] = secret;
			const response = await fetch(url, { method: "POST", headers, body: JSON.stringify(update), redirect: "manual", signal: abort.signal });
			status = response.status;
			await response.body?.cancel().catch(() => undefined);
		} catch (failure) {
			error = describeFailure(failure, timedOut);
		} finally {
			clearTimeout(timeout);
			this.aborts.delete(abort);
			this.inFlight.delete(update);
		}
		if (this.stopped) return;
		this.bot.logPush({ update_id: update.update_id, url, ...(status !== undefined ? { status } : { error }), at: Date.now() });
		if (status !== undefined && status >= 200 && status < 300) {
			this.retries.delete(update);
			this.bot.remove(update);
		} else {
			const attempts = (this.retries.get(update)?.attempts ?? 0) + 1;
			const delay = Math.min(this.timing.redeliveryDelayMs * 2 ** (attempts - 1), this.timing.maxRedeliveryDelayMs);
			if (this.bot.pending.includes(update)) this.retries.set(update, { attempts, notBefore: Date.now() + delay });
			if (this.bot.webhook?.generation === generation) {
				this.bot.lastError = { date: unixNow(), message: status !== undefined ? `Wrong response from the webhook: ${status} ${httpStatusText(status)}` : error! };
			}
		}
		this.pump();
	}

	private clearTimer(): void {
		if (this.timer) clearTimeout(this.timer);
		this.timer = undefined;
		this.timerAt = Infinity;
	}

	/** Aborts the pushes in flight and waits for them to settle; nothing is scheduled afterwards. */
	async stop(): Promise<void> {
		this.stopped = true;
		this.clearTimer();
		for (const abort of this.aborts) abort.abort();
		await Promise.allSettled([...this.running]);
	}
}

const STATUS_TEXT: Record<number, string> = {
	301: "Moved Permanently", 302: "Found", 400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found", 405: "Method Not Allowed",
	408: "Request Timeout", 413: "Payload Too Large", 429: "Too Many Requests", 500: "Internal Server Error", 502: "Bad Gateway", 503: "Service Unavailable", 504: "Gateway Timeout",
};
const httpStatusText = (status: number): string => STATUS_TEXT[status] ?? "Unknown";
