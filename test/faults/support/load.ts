/**
 * The fault suite's load, on loopback only, in loops that end by themselves: Telegram pushing a
 * bot's updates to the gateway's webhook (with Telegram's rule: anything but a 2xx is delivered
 * again), and a client sending messages through REST (retried with the same Idempotency-Key). Every
 * answer is logged with its time, so a phase's figures are a slice of the log.
 */
import { setTimeout as sleep } from "node:timers/promises";

/** One HTTP answer: its status, or "network" when no answer came (refused, reset, timed out). */
export interface Attempt {
	at: number;
	status: number | "network";
}

export const isOk = (a: Attempt) => typeof a.status === "number" && a.status >= 200 && a.status < 300;

/** A source of work items that are retried until accepted, by `connections` workers at once. */
abstract class RetryingLoad<Item> {
	readonly attempts: Attempt[] = [];
	/** Item key -> Date.now() of its first 2xx. */
	readonly accepted = new Map<string, number>();
	protected readonly queue: Item[] = [];
	private producer: NodeJS.Timeout | undefined;
	private workers: Array<Promise<void>> = [];
	private inFlight = 0;
	private stopping = false;

	constructor(
		private readonly connections: number,
		private readonly maxBackoffMs: number,
	) {}

	protected abstract create(): Item;
	protected abstract key(item: Item): string;
	/** Sends one item once; returns the attempt's answer. */
	protected abstract deliver(item: Item): Promise<number | "network">;

	get pending(): number {
		return this.queue.length + this.inFlight;
	}

	/** Creates `perSecond` items a second until stopProducing(). */
	startProducing(perSecond: number): void {
		this.stopProducing();
		this.producer = setInterval(() => this.queue.push(this.create()), Math.round(1_000 / perSecond));
		if (this.workers.length === 0) {
			this.stopping = false;
			this.workers = Array.from({ length: this.connections }, () => this.work());
		}
	}

	stopProducing(): void {
		clearInterval(this.producer);
		this.producer = undefined;
	}

	/** Waits until every item created so far was accepted; false if that takes longer than `timeoutMs`. */
	async drain(timeoutMs: number): Promise<boolean> {
		const deadline = Date.now() + timeoutMs;
		while (this.pending > 0) {
			if (Date.now() > deadline) return false;
			await sleep(50);
		}
		return true;
	}

	/** Stops everything (the end of the suite): items still queued are abandoned. */
	async close(): Promise<void> {
		this.stopProducing();
		this.stopping = true;
		await Promise.allSettled(this.workers);
		this.workers = [];
	}

	private async work(): Promise<void> {
		let failures = 0;
		while (!this.stopping) {
			const item = this.queue.shift();
			if (!item) {
				await sleep(10);
				continue;
			}
			this.inFlight += 1;
			const status = await this.deliver(item);
			const entry = { at: Date.now(), status };
			this.attempts.push(entry);
			this.inFlight -= 1;
			if (isOk(entry)) {
				this.accepted.set(this.key(item), entry.at);
				failures = 0;
			} else {
				// As Telegram does: the update stays first in line and is sent again after a pause.
				this.queue.unshift(item);
				failures += 1;
				await sleep(Math.min(this.maxBackoffMs, 100 * 2 ** Math.min(failures - 1, 5)));
			}
		}
	}
}

export interface WebhookTarget {
	/** The api nodes' base URLs: each attempt goes to the next (a load balancer without health checks). */
	baseUrls: string[];
	path: string;
	secret: string;
	/** Telegram ids of the private chats the updates come from. */
	chatIds: number[];
}

export interface UpdateItem {
	updateId: number;
	chatId: number;
	/** Date.now() when Telegram had it to push. */
	at: number;
}

/** Telegram's side of a bot's webhook: updates queue up and are pushed until answered with a 2xx. */
export class TelegramPusher extends RetryingLoad<UpdateItem> {
	private nextId: number;
	private turn = 0;
	/** Every update created, in order. */
	readonly created: UpdateItem[] = [];

	constructor(
		private readonly target: WebhookTarget,
		firstUpdateId: number,
	) {
		super(8, 2_000);
		this.nextId = firstUpdateId;
	}

	protected create(): UpdateItem {
		const updateId = this.nextId++;
		const item = { updateId, chatId: this.target.chatIds[updateId % this.target.chatIds.length]!, at: Date.now() };
		this.created.push(item);
		return item;
	}

	protected key(item: UpdateItem): string {
		return String(item.updateId);
	}

	protected async deliver(item: UpdateItem): Promise<number | "network"> {
		const base = this.target.baseUrls[this.turn++ % this.target.baseUrls.length]!;
		const update = {
			update_id: item.updateId,
			message: {
				// Far above the ids the Telegram double gives the bot's own messages in the same chat.
				message_id: 1_000_000 + item.updateId,
				date: Math.floor(Date.now() / 1000),
				chat: { id: item.chatId, type: "private", first_name: "Fault" },
				from: { id: item.chatId, is_bot: false, first_name: "Fault" },
				text: `update ${item.updateId}`,
			},
		};
		try {
			const res = await fetch(`${base}/api/v1/telegram/webhook/${this.target.path}`, {
				method: "POST",
				headers: { "content-type": "application/json", "x-telegram-bot-api-secret-token": this.target.secret },
				body: JSON.stringify(update),
				signal: AbortSignal.timeout(20_000),
			});
			await res.arrayBuffer();
			return res.status;
		} catch {
			return "network";
		}
	}
}

export interface SendItem {
	n: number;
	chatId: number;
	text: string;
	at: number;
}

/** A REST client sending messages, each retried with its Idempotency-Key until 201 or 202. */
export class RestSender extends RetryingLoad<SendItem> {
	private next = 1;
	private turn = 0;
	readonly created: SendItem[] = [];

	constructor(
		private readonly baseUrls: string[],
		private readonly token: () => string,
		/** The gateway's chat ids to send into. */
		private readonly chatIds: number[],
		private readonly label: string,
	) {
		super(2, 2_000);
	}

	protected create(): SendItem {
		const n = this.next++;
		const item = { n, chatId: this.chatIds[n % this.chatIds.length]!, text: `${this.label} ${n}`, at: Date.now() };
		this.created.push(item);
		return item;
	}

	protected key(item: SendItem): string {
		return item.text;
	}

	protected async deliver(item: SendItem): Promise<number | "network"> {
		const base = this.baseUrls[this.turn++ % this.baseUrls.length]!;
		try {
			const res = await fetch(`${base}/api/v1/chats/${item.chatId}/messages`, {
				method: "POST",
				headers: { "content-type": "application/json", authorization: `Bearer ${this.token()}`, "idempotency-key": `${this.label}-${item.n}` },
				body: JSON.stringify({ text: item.text }),
				signal: AbortSignal.timeout(20_000),
			});
			await res.arrayBuffer();
			return res.status;
		} catch {
			return "network";
		}
	}
}
