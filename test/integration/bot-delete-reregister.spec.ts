/**
 * DELETE /bots/:id and POST /bots for the same bot at once take turns (the registration's lock): a
 * deletion whose deleteWebhook reached Telegram after the new registration's setWebhook left the bot
 * active in webhook mode with no webhook at Telegram, and nothing arrived.
 */
import { startTelegramGateway, type TelegramGateway } from "../support/telegram-gateway";

describe("deleting a bot and registering it again at once", () => {
	let t: TelegramGateway;

	beforeEach(async () => {
		t = await startTelegramGateway({ mode: "webhook", env: { LOG_LEVEL: "warn" } });
	}, 60_000);
	afterEach(() => t.stop());

	it("a bot registered again while its deletion waits on Telegram ends up receiving updates (or the registration is refused)", async () => {
		const { bot, token } = await t.addBot();
		// Telegram is slow to answer the deletion's deleteWebhook.
		t.telegram.failNext("deleteWebhook", { delayMs: 1_500 });
		const deleting = t.api("DELETE", `/bots/${bot.id}`);
		await new Promise((r) => setTimeout(r, 300));
		const again = await t.api<{ is_active: boolean }>("POST", "/bots", { token });
		expect((await deleting).status).toBe(204);

		if (again.status === 201) {
			// The gateway says the bot is active: Telegram must be pushing to it.
			const shown = await t.api<{ is_active: boolean; mode: string }>("GET", `/bots/${bot.id}`);
			expect(shown.body).toMatchObject({ is_active: true, mode: "webhook" });
			t.telegram.userSends(token, { chat_id: 5151, text: "still there?" });
			await t.telegram.waitFor(async () => (await t.gw.runtime.db.models.Message.count({ where: { text: "still there?" } })) === 1, 5_000);
		} else {
			expect(again.status).toBe(409);
		}
	});
});
