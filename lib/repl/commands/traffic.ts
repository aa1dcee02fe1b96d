/** REPL commands for bots and webhook delivery: `bots`, `webhooks`, `deliveries`. */
import { noExtra, optionalInt, parseId, parseSince, required, stringOption, UsageError } from "../args";
import { allPages, type GatewayClient } from "../client";
import { commandOf } from "../command";
import { pairs, tableOf, text, type Block } from "../format";
import type { Page } from "../../paging";

type Row = Record<string, unknown>;

const BOT_COLUMNS = ["id", "username", "display_name:name", "telegram_id:telegram id", "mode", "is_active:active", "last_error:last error"];
const WEBHOOK_COLUMNS = ["id", "url", "scope", "bot_id:bot", "chat_ids:chats", "is_active:active", "owner", "disabled_reason:disabled because"];
const DELIVERY_COLUMNS = ["id", "webhook_id:webhook", "event_id:event", "event", "status", "attempts", "last_status_code:last status", "last_error:last error", "updated_at:updated"];
const DELIVERY_STATUSES = ["pending", "in_flight", "succeeded", "failed", "dead"];

export const bots = commandOf(
	"bots",
	"Bots: list | add | remove | webhook-info | reconcile | rotate-key",
	[
		"bots list",
		"bots add <token> [--name <display name>]",
		"bots remove <id>                 deactivates it: its chats and history stay",
		"bots webhook-info <id>           Telegram's view of the bot's webhook",
		"bots reconcile                   set each bot's Telegram webhook as configured, now",
		"bots rotate-key                  re-seal stored secrets under the first TOKEN_ENCRYPTION_KEYS key",
	],
	{
		list: {
			async run(client, { positionals }) {
				noExtra(positionals, 0);
				return [tableOf(await allPages<Row>(client, "bots.list"), BOT_COLUMNS)];
			},
		},
		add: {
			options: { name: { type: "string" } },
			async run(client, { positionals, values }) {
				const token = required(positionals, 0, "token");
				noExtra(positionals, 1);
				const name = stringOption(values.name);
				const bot = await client.call<Row>("bots.create", { token, ...(name ? { display_name: name } : {}) });
				return [text(`Bot @${String(bot.username)} added (id ${String(bot.id)}, ${String(bot.mode)} mode).`), tableOf([bot], BOT_COLUMNS)];
			},
		},
		remove: {
			async run(client, { positionals }) {
				const id = parseId(required(positionals, 0, "id"), "bot id");
				noExtra(positionals, 1);
				await client.call("bots.remove", { id });
				return [text(`Bot ${id} removed (deactivated; its chats and history stay).`)];
			},
		},
		"webhook-info": {
			async run(client, { positionals }) {
				const id = parseId(required(positionals, 0, "id"), "bot id");
				noExtra(positionals, 1);
				const info = await client.call<Row>("bots.webhookInfo", { id });
				return [pairs(Object.entries(info), `Bot ${id}: Telegram webhook`)];
			},
		},
		reconcile: {
			async run(client, { positionals }) {
				noExtra(positionals, 0);
				const round = await client.call<{ outcomes: Record<string, string>; retry_after?: number; skipped?: string }>("bots.reconcile");
				if (round.skipped) return [text(`Not run: ${round.skipped}.`)];
				const rows = Object.entries(round.outcomes).map(([id, outcome]) => ({ id, outcome }));
				const waiting = round.retry_after !== undefined ? [text(`Telegram asked to wait ${round.retry_after} s: the round stopped there.`)] : [];
				return [text(`Reconciled ${rows.length} bot(s).`), ...(rows.length > 0 ? [tableOf(rows, ["id:bot", "outcome"])] : []), ...waiting];
			},
		},
		"rotate-key": {
			async run(client, { positionals }) {
				noExtra(positionals, 0);
				const result = await client.call<Row>("bots.rotateKeys");
				const webhooks = result.webhooks_resealed !== undefined ? ` and ${String(result.webhooks_resealed)} webhook(s)` : "";
				return [text(`Active key "${String(result.active_key)}": ${String(result.bots_resealed)} bot(s)${webhooks} re-sealed. Keys no row uses any more can leave TOKEN_ENCRYPTION_KEYS.`)];
			},
		},
	},
);

function webhookRow(w: Row): Row {
	const owner = w.owner as { user_id: number | null; api_key_id: number | null } | undefined;
	return { ...w, owner: owner?.api_key_id ? `key ${owner.api_key_id}` : owner?.user_id ? `user ${owner.user_id}` : null };
}

/** Puts one delivery back on the schedule, whatever webhook it belongs to. */
async function retryOne(client: GatewayClient, deliveryId: number): Promise<Row> {
	const found = await client.call<Page<Row>>("delivery.searchDeliveries", { delivery_id: deliveryId, limit: 1 });
	const delivery = found.data[0];
	if (!delivery) throw new UsageError(`no delivery ${deliveryId}`);
	return client.call<Row>("delivery.retryDelivery", { id: delivery.webhook_id, delivery_id: deliveryId });
}

async function retryCommand(client: GatewayClient, positionals: string[]): Promise<Block[]> {
	const id = parseId(required(positionals, 0, "delivery id"), "delivery id");
	noExtra(positionals, 1);
	const delivery = await retryOne(client, id);
	return [text(`Delivery ${id} (webhook ${String(delivery.webhook_id)}) is due again now.`)];
}

export const webhooks = commandOf(
	"webhooks",
	"Webhooks: list | test | retry | replay",
	[
		"webhooks list",
		"webhooks test <id>                          a signed ping to the endpoint now",
		"webhooks retry <delivery id>                put one delivery back on the schedule",
		"webhooks replay <id> --since <ISO time | age such as 30m, 2h, 7d>",
		"webhooks replay <id> --since-seq <seq>",
	],
	{
		list: {
			async run(client, { positionals }) {
				noExtra(positionals, 0);
				return [tableOf((await allPages<Row>(client, "delivery.listWebhooks")).map(webhookRow), WEBHOOK_COLUMNS)];
			},
		},
		test: {
			async run(client, { positionals }) {
				const id = parseId(required(positionals, 0, "id"), "webhook id");
				noExtra(positionals, 1);
				const result = await client.call<Row>("delivery.testWebhook", { id });
				return [pairs(Object.entries(result), `Webhook ${id}: test ping`)];
			},
		},
		retry: { run: (client, { positionals }) => retryCommand(client, positionals) },
		replay: {
			options: { since: { type: "string" }, "since-seq": { type: "string" } },
			async run(client, { positionals, values }) {
				const id = parseId(required(positionals, 0, "id"), "webhook id");
				noExtra(positionals, 1);
				const sinceSeq = stringOption(values["since-seq"]);
				const since = stringOption(values.since);
				if ((since === undefined) === (sinceSeq === undefined)) throw new UsageError("give exactly one of --since and --since-seq");
				const from = sinceSeq !== undefined ? { since_seq: optionalInt(sinceSeq, "since-seq", 0, 999_999_999)! } : { since: parseSince(since).toISOString() };
				const result = await client.call<{ scheduled: number; complete: boolean }>("delivery.replayWebhook", { id, ...from });
				return [text(`Replay of webhook ${id}: ${result.scheduled} deliveries scheduled${result.complete ? "." : " (capped: run it again with a later --since for the rest)."}`)];
			},
		},
	},
);

export const deliveries = commandOf(
	"deliveries",
	"Webhook deliveries: list (dead by default) | retry",
	[
		"deliveries [list] [--status dead|failed|pending|in_flight|succeeded|all] [--webhook <id>] [--limit <n>]",
		"deliveries retry <delivery id>",
		"deliveries retry --all-dead [--webhook <id>]   every dead delivery (up to 1000) is due again",
	],
	{
		list: {
			options: { status: { type: "string" }, webhook: { type: "string" }, limit: { type: "string" } },
			async run(client, { positionals, values }) {
				noExtra(positionals, 0);
				const status = stringOption(values.status) ?? "dead";
				if (status !== "all" && !DELIVERY_STATUSES.includes(status)) throw new UsageError(`--status must be one of ${DELIVERY_STATUSES.join(", ")} or all`);
				const webhook = stringOption(values.webhook);
				const limit = optionalInt(values.limit, "limit", 1, 200) ?? 50;
				const page = await client.call<Page<Row>>("delivery.searchDeliveries", {
					limit,
					...(status !== "all" ? { status } : {}),
					...(webhook !== undefined ? { webhook_id: parseId(webhook, "--webhook") } : {}),
				});
				const more = page.next_cursor ? ` (newest ${limit}; --limit shows more)` : "";
				return [tableOf(page.data, DELIVERY_COLUMNS, `Deliveries${status === "all" ? "" : ` (${status})`}${more}`)];
			},
		},
		retry: {
			options: { "all-dead": { type: "boolean" }, webhook: { type: "string" } },
			async run(client, { positionals, values }) {
				if (!values["all-dead"]) {
					if (values.webhook !== undefined) throw new UsageError("--webhook goes with --all-dead");
					return retryCommand(client, positionals);
				}
				noExtra(positionals, 0);
				const webhook = stringOption(values.webhook);
				const dead = await allPages<Row>(client, "delivery.searchDeliveries", { status: "dead", ...(webhook !== undefined ? { webhook_id: parseId(webhook, "--webhook") } : {}) });
				for (const d of dead) await client.call("delivery.retryDelivery", { id: d.webhook_id, delivery_id: d.id });
				return [text(`${dead.length} dead deliveries are due again.`)];
			},
		},
	},
	"list",
);
