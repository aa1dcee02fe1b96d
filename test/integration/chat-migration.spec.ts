/**
 * A group upgraded to a supergroup: the supergroup is a chat of its own (a new Telegram id), and
 * whoever could read the group, and the chat webhooks on it, follow it there. Telegram announces the
 * upgrade in both chats (migrate_to_chat_id, migrate_from_chat_id), in either order.
 */
import { createUser, type TestUser } from "../support/auth";
import { userWrites, type ChatBody, type Page } from "../support/chat-helpers";
import { createWebhook, WEBHOOK_TEST_ENV } from "../support/receivers";
import { startTelegramGateway, type TelegramGateway } from "../support/telegram-gateway";

describe("a group upgraded to a supergroup", () => {
	let t: TelegramGateway;
	let bot: { id: number; token: string };
	let viewer: TestUser;
	let nextGroup = -4100;

	beforeAll(async () => {
		t = await startTelegramGateway({ mode: "webhook", env: WEBHOOK_TEST_ENV });
		const added = await t.addBot({ username: "migrating_bot" });
		bot = { id: added.bot.id, token: added.token };
		viewer = await createUser(t.gw, t.adminToken, ["viewer"]);
	}, 60_000);
	afterAll(() => t.stop());

	const serviceMessage = (chat: { id: number; type: "group" | "supergroup" }, extra: Record<string, number>) => ({
		message: { message_id: 1 + Math.floor(Math.random() * 1e6), date: Math.floor(Date.now() / 1000), chat: { ...chat, title: "Team" }, from: { id: 501, is_bot: false, first_name: "Ann" }, ...extra },
	});
	const chatsOf = async (token: string) => (await t.api<Page<ChatBody>>("GET", "/chats?limit=200", undefined, token)).body.data;
	const supergroupOf = async (telegramId: number) => {
		const deadline = Date.now() + 5_000;
		for (;;) {
			const found = (await chatsOf(t.adminToken)).find((c) => c.telegram_id === telegramId);
			if (found || Date.now() > deadline) return found;
			await new Promise((r) => setTimeout(r, 50));
		}
	};

	it.each([
		["the group's message first", "group-first"],
		["the supergroup's message first", "supergroup-first"],
	])("its readers and chat webhooks follow it (%s)", async (_label, order) => {
		const groupId = --nextGroup;
		const supergroupId = -1_000_000_000_000 + groupId;
		const group = (await userWrites(t, bot.token, bot.id, { chat_id: groupId, text: "before the upgrade" })).chatId;
		const granted = await t.api("PUT", `/chats/${group}/permissions`, { user_id: viewer.id, can_read: true });
		expect([200, 201]).toContain(granted.status);
		const webhook = await createWebhook(t, { url: "https://hooks.example.com/team", scope: "chat", chat_ids: [group] });

		const inGroup = serviceMessage({ id: groupId, type: "group" }, { migrate_to_chat_id: supergroupId });
		const inSupergroup = serviceMessage({ id: supergroupId, type: "supergroup" }, { migrate_from_chat_id: groupId });
		for (const update of order === "group-first" ? [inGroup, inSupergroup] : [inSupergroup, inGroup]) t.telegram.enqueueUpdate(bot.token, update);

		const supergroup = await supergroupOf(supergroupId);
		expect(supergroup).toBeDefined();
		const deadline = Date.now() + 5_000;
		while (!(await chatsOf(viewer.token)).some((c) => c.id === supergroup!.id) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
		expect((await chatsOf(viewer.token)).map((c) => c.id)).toEqual(expect.arrayContaining([group, supergroup!.id]));
		expect((await t.api("GET", `/chats/${supergroup!.id}/messages`, undefined, viewer.token)).status).toBe(200);
		expect((await t.api<{ chat_ids: number[] }>("GET", `/webhooks/${webhook.id}`)).body.chat_ids).toEqual([group, supergroup!.id]);
		const grants = await t.gw.runtime.db.models.ChatPermission.count({ where: { chat_id: supergroup!.id } });
		expect(grants).toBe(1);
	});

	it("a grant already on the supergroup stays as it was given there", async () => {
		const groupId = --nextGroup;
		const supergroupId = -1_000_000_000_000 + groupId;
		const group = (await userWrites(t, bot.token, bot.id, { chat_id: groupId, text: "group" })).chatId;
		await t.api("PUT", `/chats/${group}/permissions`, { user_id: viewer.id, can_read: true, can_send: true });
		t.telegram.enqueueUpdate(bot.token, serviceMessage({ id: supergroupId, type: "supergroup" }, { migrate_from_chat_id: groupId - 1 })); // names another group: nothing to carry
		const supergroup = (await supergroupOf(supergroupId))!;
		await t.api("PUT", `/chats/${supergroup.id}/permissions`, { user_id: viewer.id, can_read: true });
		t.telegram.enqueueUpdate(bot.token, serviceMessage({ id: groupId, type: "group" }, { migrate_to_chat_id: supergroupId }));
		const deadline = Date.now() + 3_000;
		const { Chat, ChatPermission } = t.gw.runtime.db.models;
		while ((await Chat.findByPk(group))?.migrated_to_chat_id == null && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
		await new Promise((r) => setTimeout(r, 200));
		const onSupergroup = await ChatPermission.findAll({ where: { chat_id: supergroup.id }, raw: true });
		expect(onSupergroup.map((g) => [Number(g.user_id), Boolean(g.can_read), Boolean(g.can_send)])).toEqual([[viewer.id, true, false]]);
	});
});
