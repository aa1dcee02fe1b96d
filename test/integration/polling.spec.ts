/**
 * Long polling across in-process nodes sharing one database and one shared state: one poller per
 * bot, the stored offset moves with the updates, and when the polling node stops another one takes
 * over from the stored offset without losing or repeating an update.
 */
import type { ServiceBroker } from "moleculer";
import type { LeaseRunner } from "../../lib/lease";
import { startTelegramGateway, type TelegramGateway } from "../support/telegram-gateway";

type Event = { type: string; message?: { text: string | null } };

describe("long polling", () => {
	let t: TelegramGateway;
	let token: string;
	let botId: number;

	const texts = () => (t.events as unknown as Event[]).filter((e) => e.type === "new_message").map((e) => e.message!.text);
	const pollingNode = (): ServiceBroker | undefined =>
		t.gw.nodes
			.map((n) => n.broker)
			.find((b) => {
				const ingest = b.getLocalService("ingest") as unknown as { leases?: LeaseRunner } | undefined;
				return ingest?.leases?.held.includes(`poller:bot:${botId}`);
			});

	beforeAll(async () => {
		t = await startTelegramGateway({
			mode: "polling",
			nodes: [
				["api", "auth", "bots", "chats", "broker"],
				["ingest", "auth"],
				["ingest", "auth"],
			],
		});
		({ token, bot: { id: botId } } = await t.addBot());
	});
	afterAll(() => t.stop());

	it("one poller for the bot across the nodes, and updates come through with the offset stored", async () => {
		for (let i = 1; i <= 3; i++) t.telegram.userSends(token, { chat_id: 900, text: `m${i}` });
		await t.telegram.waitFor(() => texts().length >= 3, 10_000);
		expect(texts()).toEqual(["m1", "m2", "m3"]);
		const holders = t.gw.nodes.filter((n) => (n.broker.getLocalService("ingest") as unknown as { leases?: LeaseRunner })?.leases?.held.length);
		expect(holders).toHaveLength(1);
		const bot = await t.gw.runtime.db.models.Bot.findByPk(botId, { raw: true });
		const lastUpdateId = Math.max(...t.telegram.getUpdatesCalls.filter((c) => c.token === token).map((c) => c.offset ?? 0));
		expect(Number(bot!.polling_offset)).toBeGreaterThanOrEqual(lastUpdateId);
		// Telegram never saw two getUpdates at once for this bot (it would answer 409).
		expect(t.telegram.calls.getupdates ?? t.telegram.calls.getUpdates).toBeGreaterThan(0);
	});

	it("when the polling node stops, another takes over from the stored offset: nothing lost, nothing twice", async () => {
		const node = pollingNode();
		expect(node).toBeDefined();
		await node!.stop();
		for (let i = 4; i <= 6; i++) t.telegram.userSends(token, { chat_id: 900, text: `m${i}` });
		await t.telegram.waitFor(() => texts().length >= 6, 15_000);
		expect(texts()).toEqual(["m1", "m2", "m3", "m4", "m5", "m6"]);
		expect(pollingNode()).toBeDefined();
		expect(pollingNode()).not.toBe(node);
	});

	it("prototype keys in a polled update are dropped before it is stored, as from a webhook body", async () => {
		const message = JSON.parse(
			'{"message_id": 7001, "date": 1700000000, "chat": {"id": 900, "type": "private", "first_name": "P", "__proto__": {"polluted": 1}}, "text": "keys", "constructor": {"prototype": {"polluted": 1}}}',
		) as Record<string, unknown>;
		const sent = t.telegram.enqueueUpdate(token, { message } as never);
		await t.telegram.waitFor(() => texts().includes("keys"), 10_000);
		const [row] = await t.gw.runtime.db.models.TelegramUpdate.findAll({ where: { bot_id: botId, update_id: sent.update_id }, raw: true });
		const stored = JSON.parse(row!.payload) as { message: Record<string, unknown> & { chat: Record<string, unknown> } };
		expect(Object.keys(stored.message)).not.toContain("constructor");
		expect(Object.keys(stored.message.chat)).not.toContain("__proto__");
		expect(stored.message.text).toBe("keys");
		expect(({} as Record<string, unknown>).polluted).toBeUndefined();
	});

	const storedOffset = async () => Number((await t.gw.runtime.db.models.Bot.findByPk(botId, { raw: true }))!.polling_offset);
	const privateMessage = (messageId: number, text: string) => ({ message_id: messageId, date: 1_700_000_000, chat: { id: 900, type: "private", first_name: "P" }, text });

	it("updates Telegram numbers anew below the offset (after a week without updates) are stored, and the offset follows them down", async () => {
		const before = await storedOffset();
		// Sent with the offset, getUpdates would have confirmed (dropped) these unseen. The poll waiting
		// now (with the offset that confirms the last batch) ends after its 20-30 s; the next goes without.
		for (const [i, updateId] of [before - 500, before - 499, before - 498].entries()) t.telegram.enqueueUpdate(token, { update_id: updateId, message: privateMessage(7_100 + i, `renumbered ${i}`) } as never);
		await t.telegram.waitFor(() => texts().includes("renumbered 2"), 40_000);
		expect(t.telegram.getUpdatesCalls.some((c) => c.token === token && c.offset === undefined)).toBe(true);
		expect(texts().filter((text) => text?.startsWith("renumbered"))).toEqual(["renumbered 0", "renumbered 1", "renumbered 2"]);
		await t.telegram.waitFor(async () => (await storedOffset()) === before - 497, 5_000);
		t.telegram.enqueueUpdate(token, { update_id: before - 497, message: privateMessage(7_110, "renumbered next") } as never);
		await t.telegram.waitFor(() => texts().includes("renumbered next"), 40_000);
	}, 90_000);

	it("a batch the store keeps refusing is named in the bot's last_error, which clears once it is stored", async () => {
		const ingest = pollingNode()!.getLocalService("ingest") as unknown as { store(...args: unknown[]): Promise<unknown> };
		const spy = jest.spyOn(ingest, "store").mockRejectedValue(new Error("the disk is full"));
		try {
			t.telegram.enqueueUpdate(token, { message: privateMessage(7_200, "held back") } as never);
			await t.telegram.waitFor(async () => ((await t.gw.runtime.db.models.Bot.findByPk(botId, { raw: true }))!.last_error ?? "").includes("the disk is full"), 10_000);
		} finally {
			spy.mockRestore();
		}
		await t.telegram.waitFor(() => texts().includes("held back"), 15_000);
		await t.telegram.waitFor(async () => (await t.gw.runtime.db.models.Bot.findByPk(botId, { raw: true }))!.last_error === null, 5_000);
	});

	it("a deleted bot stops being polled", async () => {
		expect((await t.api("DELETE", `/bots/${botId}`)).status).toBe(204);
		await t.telegram.waitFor(() => pollingNode() === undefined, 10_000);
		const calls = t.telegram.getUpdatesCalls.length;
		await new Promise((r) => setTimeout(r, 300));
		expect(t.telegram.getUpdatesCalls.length).toBe(calls);
	});
});
