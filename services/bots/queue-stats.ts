/**
 * The outbound queue's depth per bot, for operators (`bots.queueStats`, the REPL's `stats`): what
 * waits, what is due now (a bot with many due messages is being held back: flood limits, Telegram
 * down, no sender), and how old the oldest message is.
 */
import type { Service, ServiceSchema, ServiceSettingSchema } from "moleculer";
import { col, fn, Op } from "sequelize";
import type { Database } from "../../lib/db/connection";
import type { Runtime } from "../../lib/runtime";
import { iso } from "../../lib/time";

export interface BotQueueDepth {
	bot_id: number;
	queued: number;
	due: number;
	max_attempts: number;
	oldest_at: string | null;
}

interface GroupRow {
	bot_id: number | string;
	count: number | string;
	max_attempts?: number | string | null;
	oldest_at?: Date | string | null;
}

export async function queueDepthByBot(db: Database, now = new Date()): Promise<BotQueueDepth[]> {
	const { OutboundQueueItem } = db.models;
	const [all, due] = await Promise.all([
		OutboundQueueItem.findAll({
			attributes: ["bot_id", [fn("COUNT", col("message_id")), "count"], [fn("MAX", col("attempts")), "max_attempts"], [fn("MIN", col("created_at")), "oldest_at"]],
			group: ["bot_id"],
			raw: true,
		}) as unknown as Promise<GroupRow[]>,
		OutboundQueueItem.findAll({
			attributes: ["bot_id", [fn("COUNT", col("message_id")), "count"]],
			where: { next_attempt_at: { [Op.lte]: now } },
			group: ["bot_id"],
			raw: true,
		}) as unknown as Promise<GroupRow[]>,
	]);
	const dueByBot = new Map(due.map((r) => [Number(r.bot_id), Number(r.count)]));
	return all
		.map((r) => ({
			bot_id: Number(r.bot_id),
			queued: Number(r.count),
			due: dueByBot.get(Number(r.bot_id)) ?? 0,
			max_attempts: Number(r.max_attempts ?? 0),
			oldest_at: iso(r.oldest_at ?? null),
		}))
		.sort((a, b) => b.queued - a.queued || a.bot_id - b.bot_id);
}

type QueueStatsThis = Service<ServiceSettingSchema> & { runtime: Runtime };

/** Mixed into the bots service. */
export const queueStatsActions: Pick<ServiceSchema<ServiceSettingSchema, QueueStatsThis>, "actions"> = {
	actions: {
		queueStats: {
			permission: "system:read",
			params: { $$strict: true },
			async handler(this: QueueStatsThis) {
				const bots = await queueDepthByBot(this.runtime.db);
				return { total: bots.reduce((sum, b) => sum + b.queued, 0), bots };
			},
		},
	},
};
