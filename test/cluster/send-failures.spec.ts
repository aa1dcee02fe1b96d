/**
 * Failed sends on the cluster's stores (MariaDB, Redis): a failure is recorded with a seq and an
 * outgoing_message event under MySQL's locks, a send of unknown outcome is not repeated, and a group
 * upgraded to a supergroup is recorded and refused. One in-process gateway on a database of its own.
 */
import { randomBytes } from "node:crypto";
import { QueryTypes } from "sequelize";
import { expectApiError } from "../support/auth";
import { sentWithText, userWrites, waitForEvent, type MessageBody } from "../support/chat-helpers";
import { startTelegramGateway, type TelegramGateway } from "../support/telegram-gateway";
import { createDatabase, dropDatabase, REDIS_URL } from "./support/cluster";

describe("failed sends on MariaDB and Redis", () => {
	const name = `tgw_sendfail_${randomBytes(3).toString("hex")}`;
	let t: TelegramGateway;
	let bot: { id: number; token: string };

	beforeAll(async () => {
		const databaseUrl = await createDatabase(name);
		t = await startTelegramGateway({ mode: "webhook", env: { DATABASE_URL: databaseUrl, REDIS_URL, NAMESPACE: name } });
		const added = await t.addBot({ username: "cluster_failing_bot" });
		bot = { id: added.bot.id, token: added.token };
	}, 120_000);
	afterEach(() => t.telegram.clearFaults());
	afterAll(async () => {
		await t?.stop();
		await dropDatabase(name);
	});

	it("a refused message and one of unknown outcome are failed with a seq and an event each; the second is not sent again", async () => {
		const blocked = await userWrites(t, bot.token, bot.id, { chat_id: 4_201, text: "hi" });
		t.telegram.markBotBlocked(4_201);
		const refused = expectApiError(await t.api("POST", `/chats/${blocked.chatId}/messages`, { text: "refused" }), 400, "BAD_REQUEST");
		expect(refused.details).toEqual({ message_id: expect.any(Number), telegram_error_code: 403 });

		const other = await userWrites(t, bot.token, bot.id, { chat_id: 4_202, text: "hi" });
		t.telegram.failNext("sendMessage", { status: 500 });
		const calls = t.telegram.calls.sendMessage ?? 0;
		const unknown = expectApiError(await t.api("POST", `/chats/${other.chatId}/messages`, { text: "maybe delivered" }), 409, "CONFLICT");
		expect(unknown.details).toEqual({ message_id: expect.any(Number), may_have_been_delivered: true, telegram_error_code: 500 });

		for (const [failure, incoming] of [[refused, blocked], [unknown, other]] as const) {
			const id = Number(failure.details!.message_id);
			const event = await waitForEvent(t, (e) => e.type === "outgoing_message" && e.message?.id === id);
			expect(event.message).toMatchObject({ status: "failed", seq: event.seq });
			expect(event.seq).toBeGreaterThan(incoming.message.seq!);
			const [row] = await t.gw.runtime.db.sequelize.query<{ n: number }>("SELECT COUNT(*) AS n FROM events WHERE type = 'outgoing_message' AND message_id = ?", { replacements: [id], type: QueryTypes.SELECT });
			expect(Number(row!.n)).toBe(1);
		}
		await new Promise((resolve) => setTimeout(resolve, 2_000));
		expect((t.telegram.calls.sendMessage ?? 0) - calls).toBe(1);
		expect(sentWithText(t, "maybe delivered")).toHaveLength(0);
		// Recorded: nothing kept for it in Redis any more.
		expect(await t.gw.runtime.state.get(`sent:${Number(unknown.details!.message_id)}`)).toBeNull();
	});

	it("a group upgraded to a supergroup: recorded on the chat, the send and the next one refused with the pointer", async () => {
		const group = await userWrites(t, bot.token, bot.id, { chat_id: -4_301, chat: { type: "group", title: "g" }, text: "hi" });
		t.telegram.migrateChat(-4_301, -1_000_000_004_301);
		const res = await t.api<MessageBody>("POST", `/chats/${group.chatId}/messages`, { text: "after the upgrade" });
		expect(expectApiError(res, 409, "CONFLICT").details).toMatchObject({ migrate_to_chat_id: -1_000_000_004_301, new_chat_id: null });
		expect((await t.api<{ migrated_to_chat_id: number }>("GET", `/chats/${group.chatId}`)).body.migrated_to_chat_id).toBe(-1_000_000_004_301);
		expect(expectApiError(await t.api("POST", `/chats/${group.chatId}/messages`, { text: "again" }), 409, "CONFLICT").details).toEqual({ migrate_to_chat_id: -1_000_000_004_301, new_chat_id: null });
	});
});
