/**
 * broker: the event log's reader side. Writers append inside their own transactions (see
 * broker/event-log.ts); this service answers where the log stands (`head`) and replays it after a
 * seq for a chat, a set of chats, the chats a principal may read, or a bot (`replay`), for socket, WebSocket and gRPC consumers.
 * With EVENT_RETENTION_DAYS set it also removes older events, hourly (broker/retention.ts).
 */
import type { Context, Service, ServiceSchema, ServiceSettingSchema } from "moleculer";
import { Op } from "sequelize";
import { runtimeOf, type Runtime } from "../lib/runtime";
import { retentionMixin } from "../mixins/retention.mixin";
import { headSeq, readEvents, type GatewayEvent, type Reader } from "./broker/event-log";
import { eventsRetention } from "./broker/retention";

/** The most chat ids a replay takes as a list (a reader's grants are looked up instead, however many). */
export const REPLAY_CHAT_IDS_MAX = 10_000;

export interface ReplayParams {
	after_seq: number;
	until_seq?: number;
	chat_id?: number;
	chat_ids?: number[];
	/** Only the chats this (non-admin) user or API key may read: its grants are looked up in the query, however many. */
	reader?: Reader;
	bot_id?: number;
	limit?: number;
}

interface BrokerLocalVars {
	runtime: Runtime;
}

type BrokerThis = Service<ServiceSettingSchema> & BrokerLocalVars;

const REPLAY_LIMIT_MAX = 1_000;

const BrokerService: ServiceSchema<ServiceSettingSchema, BrokerThis> = {
	name: "broker",
	mixins: [retentionMixin([eventsRetention])],
	settings: { rest: "/" },

	actions: {
		head: {
			async handler(this: BrokerThis): Promise<{ seq: number }> {
				return { seq: await headSeq(this.runtime.db) };
			},
		},

		/** Operators' view (REPL `stats`): where the log stands and how many events the last window added. */
		stats: {
			permission: "system:read",
			params: { $$strict: true, window_seconds: { type: "number", integer: true, min: 1, max: 3_600, optional: true, convert: true } },
			async handler(this: BrokerThis, ctx: Context<{ window_seconds?: number }>) {
				const windowSeconds = ctx.params.window_seconds ?? 60;
				const { db } = this.runtime;
				const since = new Date(Date.now() - windowSeconds * 1_000);
				const [head, recent] = await Promise.all([headSeq(db), db.models.EventRecord.count({ where: { created_at: { [Op.gte]: since } } })]);
				return { head_seq: head, window_seconds: windowSeconds, events: recent };
			},
		},

		replay: {
			params: {
				after_seq: { type: "number", integer: true, min: 0, convert: true },
				until_seq: { type: "number", integer: true, min: 0, optional: true, convert: true },
				chat_id: { type: "number", integer: true, positive: true, optional: true, convert: true },
				chat_ids: { type: "array", items: { type: "number", integer: true, positive: true }, max: REPLAY_CHAT_IDS_MAX, optional: true },
				reader: {
					type: "object",
					strict: true,
					optional: true,
					props: { type: { type: "enum", values: ["user", "api_key"] }, id: { type: "number", integer: true, positive: true } },
				},
				bot_id: { type: "number", integer: true, positive: true, optional: true, convert: true },
				limit: { type: "number", integer: true, min: 1, max: REPLAY_LIMIT_MAX, optional: true, convert: true },
			},
			async handler(this: BrokerThis, ctx: Context<ReplayParams>): Promise<GatewayEvent[]> {
				const { after_seq, until_seq, chat_id, chat_ids, reader, bot_id, limit } = ctx.params;
				return readEvents(this.runtime.db, {
					afterSeq: after_seq,
					untilSeq: until_seq,
					// With a reader its grants decide: the list beside it is for brokers of earlier versions only.
					chatIds: chat_id !== undefined ? [chat_id] : reader ? undefined : chat_ids,
					readableBy: reader,
					botId: bot_id,
					limit: limit ?? REPLAY_LIMIT_MAX,
				});
			},
		},
	},

	created(this: BrokerThis) {
		this.runtime = runtimeOf(this.broker);
	},
};

export default BrokerService;
