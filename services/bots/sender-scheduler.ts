/**
 * This node's senders (sender.ts drains one bot's queue): one sender per bot runs in the whole
 * cluster (a lease); every node scans for due messages and takes the leases that are free. What a
 * sender needs kept between its drains (the bot's recent sends, outcomes still to be recorded) is
 * kept here for as long as the service runs.
 */
import type { LoggerInstance, ServiceBroker } from "moleculer";
import type { GatewayConfig } from "../../lib/config";
import type { Database } from "../../lib/db/connection";
import { read } from "../../lib/db/raw";
import type { LeaseRunner } from "../../lib/lease";
import type { SharedState } from "../../lib/state";
import type { TelegramClient } from "../../lib/telegram/client";
import { publishEvents } from "../broker/publish";
import { followChatMigration } from "../ingest/chat-migration";
import { SendTimes } from "./flood";
import type { KnownOutcome } from "./known-outcomes";
import { drainBotQueue, type SenderDeps } from "./sender";

export interface SenderSchedulerDeps {
	db: Database;
	config: Pick<GatewayConfig, "encryptionKeys">;
	telegram: TelegramClient;
	state: SharedState;
	logger: LoggerInstance;
	/** The service's leases: a sender runs under `sender:bot:<id>`, and claims queue rows as its owner. */
	leases: LeaseRunner;
	/** Publishes what senders settled: the gateway events and outbound.settled. */
	broker: ServiceBroker;
}

/** How often the pacing of bots not sending on this node is swept. */
const PACING_SWEEP_MS = 60_000;

export class SenderScheduler {
	private readonly running = new Set<Promise<boolean>>();
	/** Per bot, kept between drains: a queue emptied and filled again must not forget its last sends. */
	private readonly sendTimes = new Map<number, SendTimes>();
	/** Outcomes settled on Telegram's side whose record is still to be written (sender.ts), by message id. */
	private readonly known = new Map<number, KnownOutcome>();
	private pacingSweptAt = Date.now();

	constructor(private readonly deps: SenderSchedulerDeps) {}

	/**
	 * Takes the sender lease of every bot with due messages that no node is sending for. A scan (no
	 * `botIds`) reads who holds the leases in one round trip and tries only the free ones: every node
	 * scans every second, and tried one by one, each bot another node sends for cost one attempt each.
	 */
	async schedule(botIds?: number[]): Promise<void> {
		const { db, leases, logger } = this.deps;
		this.forgetIdlePacing();
		let due: number[];
		try {
			if (botIds) due = botIds;
			else {
				const rows = await read<{ bot_id: number }>(db, "SELECT DISTINCT bot_id FROM outbound_queue WHERE next_attempt_at <= ?", [new Date()]);
				const idle = rows.map((r) => Number(r.bot_id)).filter((botId) => !leases.isRunning(senderKey(botId)));
				const free = await leases.available(idle.map(senderKey));
				due = idle.filter((_, i) => free[i]);
			}
		} catch (err) {
			logger.warn("Cannot scan the outbound queue:", (err as Error).message);
			return;
		}
		for (const botId of due) {
			const key = senderKey(botId);
			if (leases.isRunning(key)) continue;
			const deps = this.senderDeps(botId);
			const running = leases.run(key, (signal) =>
				drainBotQueue(deps, botId, signal).catch((err: unknown) => {
					logger.warn(`Bot ${botId}: sender stopped (${(err as Error).message}); it resumes on the next scan`);
				}),
			);
			this.running.add(running);
			void running.finally(() => this.running.delete(running));
		}
	}

	/** A bot deleted (or not active) stops sending at once: its sender here, if any, is aborted, even in a 429 pause. */
	async stopIfInactive(botId: number | undefined): Promise<void> {
		const { db, leases } = this.deps;
		const key = senderKey(botId);
		if (!botId || !leases.isRunning(key)) return;
		const bot = await db.models.Bot.findByPk(botId, { attributes: ["is_active"], raw: true }).catch(() => undefined);
		// Unreadable: the sender's own check before its next send decides.
		if (bot === undefined) return;
		if (!bot?.is_active) {
			leases.abort(key);
			// A deleted bot's pacing is of no use any more (one registered again starts afresh).
			this.sendTimes.delete(botId);
		}
	}

	/**
	 * Once a minute, the pacing of bots not sending here forgets its quiet chats, and goes once nothing
	 * is left: a bot whose sender moved to another node, or was deleted there, never sends here again
	 * to sweep its own (the shared state paces across nodes).
	 */
	private forgetIdlePacing(now = Date.now()): void {
		if (now - this.pacingSweptAt < PACING_SWEEP_MS) return;
		this.pacingSweptAt = now;
		for (const [botId, times] of this.sendTimes) {
			if (!this.deps.leases.isRunning(senderKey(botId)) && times.sweep(now)) this.sendTimes.delete(botId);
		}
	}

	/** Resolves once every sender started here has ended (the leases' work aborted first, on shutdown). */
	async stopped(): Promise<void> {
		await Promise.allSettled([...this.running]);
	}

	private senderDeps(botId: number): SenderDeps {
		const { db, config, telegram, state, logger, leases, broker } = this.deps;
		let sendTimes = this.sendTimes.get(botId);
		if (!sendTimes) {
			sendTimes = new SendTimes();
			this.sendTimes.set(botId, sendTimes);
		}
		return {
			db,
			sendTimes,
			known: this.known,
			keys: config.encryptionKeys,
			telegram,
			state,
			logger,
			owner: leases.owner,
			chatMigrated: (migration) => followChatMigration(db, broker, logger, migration),
			settled: async (events, settled) => {
				await publishEvents(broker, events);
				for (const item of settled) {
					const recorded = events.find((event) => event.type === "outgoing_message" && event.message?.id === item.message_id)?.message;
					await broker.broadcast("outbound.settled", recorded ? { ...item, message: recorded } : item);
				}
			},
		};
	}
}

const senderKey = (botId: number | undefined) => `sender:bot:${botId}`;
