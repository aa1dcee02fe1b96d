/**
 * chats: the chats and message history a principal may read (the chat ACL of auth decides), one
 * message by id, and the send command: check can_send, queue the message with the bots service,
 * then wait up to 5 s for Telegram's answer (201 sent, 202 still queued).
 */
import type { Context, Service, ServiceSchema, ServiceSettingSchema } from "moleculer";
import { Op, type WhereOptions } from "sequelize";
import { read } from "../lib/db/raw";
import { fail } from "../lib/errors";
import { principalOf, respondCreated, respondWith, type GatewayContext } from "../lib/meta";
import { filteredList, pageParams } from "../lib/paging";
import { runtimeOf, type Runtime } from "../lib/runtime";
import { principalKey } from "./auth/principal";
import { chatsWithSubquery, type Right } from "./auth/grants";
import { MAX_MARKUP_TEXT_LENGTH, TELEGRAM_TEXT_LIMIT, textLengthProblem } from "./bots/outbox";
import { failedSendError } from "./bots/send-failure";
import type { Settled } from "./bots/send-outcomes";
import { chatView, messageView, type MessageRow, type MessageView } from "./chats/views";
import { historyWindow, nextHistoryCursor } from "./chats/history";
import { ID } from "../lib/validator";

const SEQ = { type: "number", integer: true, min: 0, convert: true, optional: true } as const;
const SEND_WAIT_MS = 5_000;

/** A message as stored, with who sent it (principalKey; null for incoming ones). */
type SentByRow = MessageRow & { sent_by: string | null };

interface ChatsLocalVars {
	runtime: Runtime;
	/** message id -> callbacks waiting for its outbound.settled. */
	waiters: Map<number, Array<(settled: Settled) => void>>;
}

interface ChatsMethods {
	requireChat(ctx: GatewayContext, chatId: number, right: Right, subject?: string): Promise<void>;
	waitForSettled(messageId: number, ms: number): Promise<Settled | null>;
	loadMessageRow(id: number): Promise<SentByRow>;
}

type ChatsThis = Service<ServiceSettingSchema> & ChatsLocalVars & ChatsMethods;

interface MessagesParams {
	id: number;
	limit?: number;
	cursor?: string;
	before_seq?: number;
	after_seq?: number;
}

interface SendParams {
	id: number;
	text: string;
	parse_mode?: "HTML" | "Markdown" | "MarkdownV2";
	reply_to_message_id?: number;
	disable_notification?: boolean;
}

const rightRefused = (right: Right, subject: string) => fail.forbidden(`Needs ${right} on ${subject}`);

const ChatsService: ServiceSchema<ServiceSettingSchema, ChatsThis> = {
	name: "chats",
	settings: { rest: "/" },

	actions: {
		list: {
			rest: "GET /chats",
			permission: "chats:read",
			params: { $$strict: true, ...pageParams, bot_id: { ...ID, optional: true } },
			async handler(this: ChatsThis, ctx: GatewayContext<{ limit?: number; cursor?: string; bot_id?: number }>) {
				const limit = ctx.params.limit ?? 50;
				const list = filteredList("chats", { bot_id: ctx.params.bot_id });
				const after = this.runtime.cursors.after(list, ctx.params.cursor);
				const principal = principalOf(ctx);
				// auth.chatAccess's rule, applied by the database: a page no longer carries every readable id.
				const readable: WhereOptions = principal.is_admin ? {} : chatsWithSubquery(this.runtime.db, principal, "can_read");
				const rows = await this.runtime.db.models.Chat.findAll({
					where: {
						[Op.and]: [
							readable,
							after === null ? {} : { id: { [Op.gt]: after } },
							ctx.params.bot_id === undefined ? {} : { bot_id: ctx.params.bot_id },
						],
					},
					order: [["id", "ASC"]],
					limit: limit + 1,
				});
				return this.runtime.cursors.page(list, rows, limit, (c) => c.id, chatView);
			},
		},

		get: {
			rest: "GET /chats/:id",
			permission: "chats:read",
			params: { $$strict: true, id: ID },
			async handler(this: ChatsThis, ctx: GatewayContext<{ id: number }>) {
				const chat = await this.runtime.db.models.Chat.findByPk(ctx.params.id);
				if (!chat) throw fail.notFound("Chat");
				await this.requireChat(ctx, chat.id, "can_read");
				return chatView(chat);
			},
		},

		/**
		 * History, newest first; with `after_seq`, oldest first from there (up to `before_seq` when
		 * given). `next_cursor` alone continues in the same direction and bounds (chats/history.ts).
		 */
		messages: {
			rest: "GET /chats/:id/messages",
			permission: "messages:read",
			params: { $$strict: true, id: ID, ...pageParams, before_seq: SEQ, after_seq: SEQ },
			async handler(this: ChatsThis, ctx: GatewayContext<MessagesParams>) {
				const { id, before_seq, after_seq } = ctx.params;
				const chat = await this.runtime.db.models.Chat.findByPk(id, { attributes: ["id"] });
				if (!chat) throw fail.notFound("Chat");
				await this.requireChat(ctx, id, "can_read");
				const limit = ctx.params.limit ?? 50;
				const list = `messages:${id}`;
				const window = historyWindow({ after_seq, before_seq }, ctx.params.cursor, this.runtime.cursors, list);
				const bounds: Record<symbol, number> = { [Op.ne]: null as unknown as number };
				if (window.after !== undefined) bounds[Op.gt] = window.after;
				if (window.before !== undefined) bounds[Op.lt] = window.before;
				const rows = (await this.runtime.db.models.Message.findAll({
					where: { chat_id: id, seq: bounds },
					order: [["seq", window.ascending ? "ASC" : "DESC"]],
					limit: limit + 1,
					raw: true,
				})) as unknown as MessageRow[];
				const more = rows.length > limit;
				const page = more ? rows.slice(0, limit) : rows;
				return { data: page.map(messageView), next_cursor: more ? nextHistoryCursor(window, Number(page[page.length - 1]!.seq), this.runtime.cursors, list) : null };
			},
		},

		getMessage: {
			rest: "GET /messages/:id",
			permission: "messages:read",
			params: { $$strict: true, id: ID },
			async handler(this: ChatsThis, ctx: GatewayContext<{ id: number }>) {
				const row = await this.loadMessageRow(ctx.params.id);
				const chatId = Number(row.chat_id);
				// Its sender follows its own message (the send's Location) with can_send alone: a send-only
				// grant would otherwise learn the outcome of a 202 only by sending again.
				const ownSend = row.sent_by !== null && row.sent_by === principalKey(principalOf(ctx));
				if (!ownSend || !(await ctx.call<boolean, { chat_id: number; right: Right }>("auth.can", { chat_id: chatId, right: "can_send" }))) {
					// The refusal does not name the chat: message ids are guessable, and would map them to chats.
					await this.requireChat(ctx, chatId, "can_read", "this message's chat");
				}
				return messageView(row);
			},
		},

		send: {
			rest: "POST /chats/:id/messages",
			conflict: "the Idempotency-Key was used for another message, the chat's bot is deleted, or Telegram refused the message in a way that says so (it may have been delivered; the group became a supergroup)",
			permission: "messages:send",
			// Retried (its node died, or it timed out) under the client's Idempotency-Key, or one its
			// caller gives it (lib/middlewares/implicit-idempotency.ts): a retry answers with what the
			// first attempt queued, never queues the message twice.
			implicitIdempotencyKey: true,
			retryPolicy: { enabled: true, retries: 2 },
			timeout: 15_000,
			params: {
				$$strict: true,
				id: ID,
				// Telegram refuses a text of blanks only: said here, with the field, instead of a failed message.
				// Its 4096 counts the text after markup is parsed: the cap here is for a parse_mode's raw text (outbox.ts).
				text: {
					type: "string",
					min: 1,
					max: MAX_MARKUP_TEXT_LENGTH,
					pattern: /\S/,
					messages: { stringPattern: "The 'text' field must contain something besides whitespace." },
					description: `At most ${TELEGRAM_TEXT_LIMIT} characters; with a parse_mode, at most ${TELEGRAM_TEXT_LIMIT} once the markup is parsed (Telegram decides) and ${MAX_MARKUP_TEXT_LENGTH} raw.`,
				},
				parse_mode: { type: "enum", values: ["HTML", "Markdown", "MarkdownV2"], optional: true },
				reply_to_message_id: { ...ID, optional: true },
				disable_notification: { type: "boolean", convert: true, optional: true },
			},
			async handler(this: ChatsThis, ctx: GatewayContext<SendParams> & Context<SendParams, { idempotencyKey?: string }>) {
				const principal = principalOf(ctx);
				const { id, text, parse_mode, reply_to_message_id, disable_notification } = ctx.params;
				const tooLong = textLengthProblem(text, parse_mode);
				if (tooLong) throw fail.validation([tooLong]);
				// The right first: only a refusal reads whether the chat exists (404 for everyone when it
				// does not); one that may be sent to is read by the enqueue, which answers 404 alike.
				if (!(await ctx.call<boolean, { chat_id: number; right: Right }>("auth.can", { chat_id: id, right: "can_send" }))) {
					// A plain statement (lib/db/raw.ts), as the rest of this path's reads: it runs for every message sent.
					const [chat] = await read(this.runtime.db, "SELECT id FROM chats WHERE id = ?", [id]);
					if (!chat) throw fail.notFound("Chat");
					throw rightRefused("can_send", `chat ${id}`);
				}
				const idempotencyKey = ctx.meta.idempotencyKey;
				const queued = await ctx.call<MessageView, Record<string, unknown>>("bots.enqueue", {
					chat_id: id,
					text,
					...(parse_mode ? { parse_mode } : {}),
					...(reply_to_message_id !== undefined ? { reply_to_message_id } : {}),
					...(disable_notification !== undefined ? { disable_notification } : {}),
					...(idempotencyKey ? { client_key: `${principalKey(principal)}:${idempotencyKey}` } : {}),
					sent_by: principalKey(principal),
				});
				const settled = queued.status === "queued" ? await this.waitForSettled(queued.id, SEND_WAIT_MS) : null;
				// Sent: its outcome carries it as recorded. Otherwise the record says how it ended.
				const recorded = settled?.status === "sent" ? settled.message : undefined;
				const row = !recorded && (settled || queued.status !== "queued") ? await this.loadMessageRow(queued.id) : null;
				// The failure as recorded: the same answer now, and to every retry with the Idempotency-Key.
				if (row?.status === "failed") throw failedSendError(Number(row.id), row.error);
				const message = recorded ?? (row ? messageView(row) : queued);
				if (message.status === "sent") respondCreated(ctx, `/messages/${message.id}`);
				else {
					// Still queued: where to follow it (GET /messages/:id shows its status).
					respondWith(ctx, 202);
					// moleculer-web sends $location with 201 and redirects only.
					ctx.meta.$responseHeaders = { ...ctx.meta.$responseHeaders, Location: `/api/v1/messages/${message.id}` };
				}
				return message;
			},
		},
	},

	events: {
		"outbound.settled"(this: ChatsThis, ctx: Context<Settled>) {
			const waiting = this.waiters.get(ctx.params.message_id);
			if (!waiting) return;
			this.waiters.delete(ctx.params.message_id);
			for (const resolve of waiting) resolve(ctx.params);
		},
	},

	methods: {
		async requireChat(this: ChatsThis, ctx: GatewayContext, chatId: number, right: Right, subject = `chat ${chatId}`): Promise<void> {
			const allowed = await ctx.call<boolean, { chat_id: number; right: Right }>("auth.can", { chat_id: chatId, right });
			if (!allowed) throw rightRefused(right, subject);
		},

		async loadMessageRow(this: ChatsThis, id: number): Promise<SentByRow> {
			const [row] = await read<MessageRow>(this.runtime.db, "SELECT * FROM messages WHERE id = ?", [id]);
			if (!row) throw fail.notFound("Message");
			return row as unknown as SentByRow;
		},

		/** Resolves with the message's outcome, or null when it is still queued after `ms`. */
		async waitForSettled(this: ChatsThis, messageId: number, ms: number): Promise<Settled | null> {
			return new Promise<Settled | null>((resolve) => {
				const done = (settled: Settled | null) => {
					clearTimeout(timer);
					const list = this.waiters.get(messageId)?.filter((w) => w !== onSettled);
					if (list && list.length > 0) this.waiters.set(messageId, list);
					else this.waiters.delete(messageId);
					resolve(settled);
				};
				const onSettled = (settled: Settled) => done(settled);
				const timer = setTimeout(() => done(null), ms);
				this.waiters.set(messageId, [...(this.waiters.get(messageId) ?? []), onSettled]);
				// It may have been settled before this waiter was registered.
				void read<{ status: string }>(this.runtime.db, "SELECT status FROM messages WHERE id = ?", [messageId]).then(
					([row]) => row && row.status !== "queued" && done({ message_id: messageId, status: row.status as Settled["status"] }),
					() => undefined,
				);
			});
		},
	},

	created(this: ChatsThis) {
		this.runtime = runtimeOf(this.broker);
		this.waiters = new Map();
	},
};

export default ChatsService;
