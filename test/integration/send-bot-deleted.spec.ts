/**
 * A bot deleted while its sender waits out a 429 pause sends nothing more: the deletion aborts its
 * sender (bots.changed), and the sender looks again whether the bot is active after every pause and
 * before each send; what it had queued fails, saying why.
 */
import { userWrites, type MessageBody } from "../support/chat-helpers";
import { startTelegramGateway, type TelegramGateway } from "../support/telegram-gateway";

type ErrorBody = { error?: { code: string; message: string; details?: Record<string, unknown> } };

describe("sending: a bot deleted mid-queue", () => {
	let t: TelegramGateway;

	beforeAll(async () => {
		t = await startTelegramGateway({ mode: "webhook" });
	}, 60_000);
	afterEach(() => t.telegram.clearFaults());
	afterAll(() => t.stop());

	it("a bot deleted while its queue is paused by a 429 sends nothing more once the pause ends", async () => {
		const added = await t.addBot({ username: "paused_then_deleted_bot" });
		const doomed = { id: added.bot.id, token: added.token };
		const chats = [];
		for (let i = 0; i < 10; i += 1) chats.push((await userWrites(t, doomed.token, doomed.id, { chat_id: 7_100 + i, text: `hi ${i}` })).chatId);
		// Hold the bot's sender lease so all ten messages are queued before its sender looks.
		const { state } = t.gw.runtime;
		const lease = `sender:bot:${doomed.id}`;
		expect(await state.acquireLease(lease, "test-holder", 30_000)).toBe(true);
		const posts = chats.map((chatId, i) => t.api<MessageBody & ErrorBody>("POST", `/chats/${chatId}/messages`, { text: `doomed ${i}` }));
		await t.telegram.waitFor(async () => (await t.gw.runtime.db.models.OutboundQueueItem.count({ where: { bot_id: doomed.id } })) === 10, 5_000, 200);
		// The first send gets 429 retry_after 4: the bot's whole queue is paused for 4 s.
		t.telegram.failNext("sendMessage", { status: 429, retry_after: 4 });
		const callsBefore = t.telegram.calls.sendMessage ?? 0;
		await state.releaseLease(lease, "test-holder");
		await t.telegram.waitFor(() => (t.telegram.calls.sendMessage ?? 0) >= callsBefore + 1, 5_000);
		await new Promise((resolve) => setTimeout(resolve, 300));
		const sentBeforeDelete = t.telegram.sent.filter((r) => r.token === doomed.token).length;
		// The operator deletes the bot during the pause.
		expect((await t.api("DELETE", `/bots/${doomed.id}`)).status).toBe(204);
		const answers = await Promise.all(posts);
		await new Promise((resolve) => setTimeout(resolve, 6_000));
		const delivered = t.telegram.sent.filter((r) => r.token === doomed.token).map((r) => r.text);
		expect(delivered.slice(sentBeforeDelete)).toEqual([]);
		for (const res of answers) {
			const id = res.body.error?.details?.message_id ?? res.body.id;
			const stored = (await t.api<MessageBody>("GET", `/messages/${Number(id)}`)).body;
			// Sent before the DELETE, or failed because of it: nothing else.
			if (stored.status !== "sent") expect(stored).toMatchObject({ status: "failed", error: expect.stringMatching(/bot was deleted/) });
		}
	}, 60_000);
});
