/**
 * A send whose call fails in a way Moleculer retries (the node running it died with the call in
 * flight, or it timed out) after the message was queued: the retry answers with that message, and
 * Telegram gets it once, with or without the client's Idempotency-Key (found by a cluster probe: a
 * worker killed during a send answered 503 "try again later" for a message that went out, and the
 * client's retry sent it twice).
 */
import { Errors } from "moleculer";
import { userWrites } from "../support/chat-helpers";
import { startTelegramGateway, type TelegramGateway } from "../support/telegram-gateway";

describe("a send retried after its call failed", () => {
	let t: TelegramGateway;
	let bot: { id: number; token: string };
	let chats: { waitForSettled: (...args: unknown[]) => Promise<unknown> };

	beforeAll(async () => {
		t = await startTelegramGateway({
			mode: "polling",
			nodes: [
				["api", "auth", "realtime"],
				["auth", "bots", "chats", "ingest", "broker", "delivery"],
			],
		});
		const added = await t.addBot();
		bot = { id: added.bot.id, token: added.token };
		chats = t.gw.nodes[1]!.broker.getLocalService("chats") as unknown as typeof chats;
	}, 60_000);
	afterAll(() => t?.stop());

	it.each<[string, Record<string, string>]>([["without an Idempotency-Key", {}], ["with one", { "idempotency-key": "retried-1" }]])(
		"%s: answered with the message the first attempt queued, sent to Telegram once",
		async (_name, headers) => {
			const chatTelegramId = 7_000 + Object.keys(headers).length;
			const { chatId } = await userWrites(t, bot.token, bot.id, { chat_id: chatTelegramId, text: "hello" });
			const original = chats.waitForSettled.bind(chats);
			// The first attempt queued the message, then its node "died" (the caller hears a rejected request).
			const spy = jest.spyOn(chats, "waitForSettled").mockImplementationOnce(() => Promise.reject(new Errors.RequestRejectedError({ action: "chats.send", nodeID: "worker-gone" })));
			spy.mockImplementation(original);
			try {
				const res = await t.api<{ id: number; text: string }>("POST", `/chats/${chatId}/messages`, { text: "exactly once" }, undefined, headers);
				expect([201, 202]).toContain(res.status);
				expect(res.body.text).toBe("exactly once");
				await t.telegram.waitFor(() => t.telegram.sent.some((s) => s.token === bot.token && s.chat_id === chatTelegramId), 10_000);
				await new Promise((resolve) => setTimeout(resolve, 300));
				expect(t.telegram.sent.filter((s) => s.token === bot.token && s.chat_id === chatTelegramId)).toHaveLength(1);
				expect(await t.gw.runtime.db.models.Message.count({ where: { chat_id: chatId, direction: "outgoing" } })).toBe(1);
				expect(spy).toHaveBeenCalled();
			} finally {
				spy.mockRestore();
			}
		},
	);
});
