/**
 * The chat ACL: GET/PUT /chats/:id/permissions, DELETE /chats/:id/permissions/:grant_id, and the
 * `auth.can` / `auth.chatAccess` actions every entry point asks. Chats are inserted directly.
 */
import type { Principal } from "../../services/auth/principal";
import { insertBot, insertChat } from "../support/database";
import type { TestGateway } from "../support/harness";
import {
	adminToken,
	api,
	createKey,
	createUser,
	errorFields,
	expectApiError,
	me,
	resolvePrincipal,
	startAuthGateway,
	type Json,
	type TestUser,
} from "../support/auth";

type Right = "can_read" | "can_send" | "can_manage";
const RIGHTS: Right[] = ["can_read", "can_send", "can_manage"];

describe("chat grants", () => {
	let gw: TestGateway;
	let admin: string;
	let adminId: number;
	let operator: TestUser;
	let viewer: TestUser;
	let botId: number;
	let telegramIds = 5_000;

	beforeAll(async () => {
		gw = await startAuthGateway();
		admin = await adminToken(gw);
		adminId = Number((await me(gw.baseUrl, admin)).body.id);
		operator = await createUser(gw, admin, ["operator"]);
		viewer = await createUser(gw, admin, ["viewer"]);
		botId = Number((await insertBot(gw.runtime.db)).id);
	});
	afterAll(() => gw.stop());

	const newChat = async () => Number((await insertChat(gw.runtime.db, botId, ++telegramIds)).id);
	const grants = (where: Json = {}) => gw.runtime.db.models.ChatPermission.findAll({ where, raw: true });
	const put = (chatId: number, body: Json, credential = admin) => api(gw.baseUrl, "PUT", `/chats/${chatId}/permissions`, credential, body);
	const list = (chatId: number, credential = admin) => api(gw.baseUrl, "GET", `/chats/${chatId}/permissions`, credential);
	const remove = (chatId: number, grantId: number, credential = admin) =>
		api(gw.baseUrl, "DELETE", `/chats/${chatId}/permissions/${grantId}`, credential);
	const can = (principal: Principal, chatId: number, right: Right) =>
		gw.broker.call<boolean, { chat_id: number; right: Right }>("auth.can", { chat_id: chatId, right }, { meta: { principal } });
	const chatAccess = (principal: Principal, right: Right) =>
		gw.broker.call<{ all: boolean; chat_ids: number[] }, { right: Right }>("auth.chatAccess", { right }, { meta: { principal } });

	it("PUT creates a grant (201), then replaces it (200): one grant per principal and chat", async () => {
		const chat = await newChat();
		const created = await put(chat, { user_id: viewer.id, can_read: true });
		expect(created.status).toBe(201);
		expect(created.body).toMatchObject({
			id: expect.any(Number),
			chat_id: chat,
			user_id: viewer.id,
			api_key_id: null,
			can_read: true,
			can_send: false,
			can_manage: false,
			granted_by_user_id: adminId,
		});
		const replaced = await put(chat, { user_id: viewer.id, can_send: true });
		expect(replaced.status).toBe(200);
		expect(replaced.body).toMatchObject({ id: created.body.id, can_read: false, can_send: true, can_manage: false });
		const rows = await grants({ chat_id: chat });
		expect(rows).toHaveLength(1);
		expect(rows[0]).toMatchObject({ user_id: viewer.id });
		expect(Boolean(rows[0]!.can_read)).toBe(false);
		expect(Boolean(rows[0]!.can_send)).toBe(true);

		const listed = await list(chat);
		expect(listed.status).toBe(200);
		expect(listed.body).toEqual({ data: [replaced.body], next_cursor: null });
	});

	it.each([
		["both user_id and api_key_id", (k: number) => ({ user_id: viewer.id, api_key_id: k, can_read: true })],
		["neither user_id nor api_key_id", () => ({ can_read: true })],
	])("PUT with %s is 400 naming both fields, and grants nothing", async (_name, body) => {
		const chat = await newChat();
		const { id: keyId } = await createKey(gw.baseUrl, admin);
		const res = await put(chat, body(keyId));
		expectApiError(res, 400, "VALIDATION_ERROR");
		expect(errorFields(res).sort()).toEqual(["api_key_id", "user_id"]);
		expect(await grants({ chat_id: chat })).toHaveLength(0);
	});

	it("PUT for a user or key that does not exist is 400 naming it", async () => {
		const chat = await newChat();
		const res = await put(chat, { user_id: 987_654, can_read: true });
		expectApiError(res, 400, "VALIDATION_ERROR");
		expect(errorFields(res)).toEqual(["user_id"]);
		expect(await grants({ chat_id: chat })).toHaveLength(0);
	});

	it("an unknown chat is 404 on GET, PUT and DELETE", async () => {
		const before = (await grants()).length;
		expectApiError(await list(999_999), 404, "NOT_FOUND");
		expectApiError(await put(999_999, { user_id: viewer.id, can_read: true }), 404, "NOT_FOUND");
		expectApiError(await remove(999_999, 1), 404, "NOT_FOUND");
		expect(await grants()).toHaveLength(before);
	});

	it("an operator without can_manage on the chat is 403, and nothing changes", async () => {
		const chat = await newChat();
		const existing = await put(chat, { user_id: viewer.id, can_read: true });
		const before = await grants({ chat_id: chat });
		expectApiError(await list(chat, operator.token), 403, "FORBIDDEN");
		expectApiError(await put(chat, { user_id: operator.id, can_manage: true }, operator.token), 403, "FORBIDDEN");
		expectApiError(await put(chat, { user_id: viewer.id, can_send: true }, operator.token), 403, "FORBIDDEN");
		expectApiError(await remove(chat, Number(existing.body.id), operator.token), 403, "FORBIDDEN");
		expect(await grants({ chat_id: chat })).toEqual(before);
		// A viewer lacks chats:manage altogether.
		expectApiError(await list(chat, viewer.token), 403, "FORBIDDEN");
	});

	it("with can_manage granted by an admin, an operator manages that chat and no other", async () => {
		const managed = await newChat();
		const other = await newChat();
		expect((await put(managed, { user_id: operator.id, can_read: true, can_manage: true })).status).toBe(201);

		const listed = await list(managed, operator.token);
		expect(listed.status).toBe(200);
		expect((listed.body.data as Json[]).map((g) => g.user_id)).toEqual([operator.id]);
		const granted = await put(managed, { user_id: viewer.id, can_read: true }, operator.token);
		expect(granted.status).toBe(201);
		expect(granted.body).toMatchObject({ chat_id: managed, user_id: viewer.id, can_read: true, granted_by_user_id: operator.id });

		expectApiError(await list(other, operator.token), 403, "FORBIDDEN");
		expectApiError(await put(other, { user_id: viewer.id, can_read: true }, operator.token), 403, "FORBIDDEN");
		expect(await grants({ chat_id: other })).toHaveLength(0);
	});

	it("a manager grants only rights it holds on the chat: can_manage alone gives no one (itself included) can_read or can_send (403, nothing changed)", async () => {
		const chat = await newChat();
		const manager = await createUser(gw, admin, ["operator"]);
		expect((await put(chat, { user_id: manager.id, can_manage: true })).status).toBe(201);
		const before = await grants({ chat_id: chat });
		for (const body of [
			{ user_id: manager.id, can_read: true, can_send: true, can_manage: true },
			{ user_id: viewer.id, can_read: true },
			{ user_id: viewer.id, can_send: true },
		]) {
			const refused = expectApiError(await put(chat, body, manager.token), 403, "FORBIDDEN");
			expect(refused.message).toMatch(/can_(read|send)/);
		}
		expect(await grants({ chat_id: chat })).toEqual(before);
		// What it holds, it may pass on.
		expect((await put(chat, { user_id: viewer.id, can_manage: true }, manager.token)).status).toBe(201);
	});

	it("a manager may not replace or remove a grant holding rights it lacks (403 naming them, nothing changed); one within its rights it may", async () => {
		const chat = await newChat();
		const manager = await createUser(gw, admin, ["operator"]);
		const reader = await createUser(gw, admin, ["viewer"]);
		expect((await put(chat, { user_id: manager.id, can_read: true, can_manage: true })).status).toBe(201);
		const sending = await put(chat, { user_id: viewer.id, can_read: true, can_send: true });
		const before = await grants({ chat_id: chat });

		// Replacing it with rights the manager holds would still take away can_send, which it could not give back.
		for (const body of [{ user_id: viewer.id, can_read: true }, { user_id: viewer.id }]) {
			expect(expectApiError(await put(chat, body, manager.token), 403, "FORBIDDEN").message).toMatch(/lack can_send/);
		}
		expect(expectApiError(await remove(chat, Number(sending.body.id), manager.token), 403, "FORBIDDEN").message).toMatch(/lack can_send/);
		expect(await grants({ chat_id: chat })).toEqual(before);
		expect(await can(await resolvePrincipal(gw.broker, viewer.token), chat, "can_send")).toBe(true);

		// A grant within its own rights it replaces and removes.
		const readOnly = await put(chat, { user_id: reader.id, can_read: true }, manager.token);
		expect(readOnly.status).toBe(201);
		expect((await put(chat, { user_id: reader.id, can_manage: true }, manager.token)).status).toBe(200);
		expect((await remove(chat, Number(readOnly.body.id), manager.token)).status).toBe(204);
		// An admin is not limited.
		expect((await remove(chat, Number(sending.body.id))).status).toBe(204);
	});

	it("a manager's PUTs racing an admin's revocation of its grant never win it back: after the DELETE, none creates a grant (no 201), and the manager holds nothing", async () => {
		const manager = await createUser(gw, admin, ["operator"]);
		const full = { user_id: manager.id, can_read: true, can_send: true, can_manage: true };
		for (let round = 0; round < 4; round++) {
			const chat = await newChat();
			const grant = await put(chat, full);
			expect(grant.status).toBe(201);
			const puts: Array<Promise<{ status: number }>> = [];
			for (let i = 0; i < 20; i++) {
				puts.push(put(chat, full, manager.token));
				if (i === 5) puts.push(remove(chat, Number(grant.body.id)).then((res) => ({ status: res.status === 204 ? -204 : res.status })));
				await new Promise((resolve) => setTimeout(resolve, 2));
			}
			const statuses = (await Promise.all(puts)).map((res) => res.status);
			expect(statuses).toContain(-204);
			expect(statuses).not.toContain(201);
			expect(await grants({ chat_id: chat, user_id: manager.id })).toEqual([]);
		}
	});

	it("DELETE removes a grant (204); a wrong grant id, or one of another chat, is 404", async () => {
		const chat = await newChat();
		const elsewhere = await newChat();
		const grant = await put(chat, { user_id: viewer.id, can_read: true });
		const foreign = await put(elsewhere, { user_id: viewer.id, can_read: true });
		const gone = await remove(chat, Number(grant.body.id));
		expect(gone.status).toBe(204);
		expect(gone.text).toBe("");
		expect(await grants({ chat_id: chat })).toHaveLength(0);
		expectApiError(await remove(chat, Number(grant.body.id)), 404, "NOT_FOUND");
		expectApiError(await remove(chat, 987_654), 404, "NOT_FOUND");
		expectApiError(await remove(chat, Number(foreign.body.id)), 404, "NOT_FOUND");
		expect(await grants({ id: foreign.body.id })).toHaveLength(1);
	});

	it("auth.can and auth.chatAccess follow a grant and its revocation at once", async () => {
		const chat = await newChat();
		const principal = await resolvePrincipal(gw.broker, viewer.token);
		expect(principal).toMatchObject({ type: "user", id: viewer.id });
		// Asked first, so a cached "no" would show if the grant did not clear it.
		expect(await can(principal, chat, "can_read")).toBe(false);
		expect((await chatAccess(principal, "can_read")).chat_ids).not.toContain(chat);

		const grant = await put(chat, { user_id: viewer.id, can_read: true, can_send: true });
		expect(await can(principal, chat, "can_read")).toBe(true);
		expect(await can(principal, chat, "can_send")).toBe(true);
		expect(await can(principal, chat, "can_manage")).toBe(false);
		expect(await chatAccess(principal, "can_read")).toEqual({ all: false, chat_ids: expect.arrayContaining([chat]) });
		expect((await chatAccess(principal, "can_manage")).chat_ids).not.toContain(chat);

		expect((await put(chat, { user_id: viewer.id, can_read: true })).status).toBe(200);
		expect(await can(principal, chat, "can_send")).toBe(false);

		expect((await remove(chat, Number(grant.body.id))).status).toBe(204);
		expect(await can(principal, chat, "can_read")).toBe(false);
		expect((await chatAccess(principal, "can_read")).chat_ids).not.toContain(chat);
	});

	it("a grant to an API key applies to the key, not to its owner, and the owner's grants not to the key", async () => {
		const keyChat = await newChat();
		const ownerChat = await newChat();
		const key = await createKey(gw.baseUrl, operator.token);
		const keyPrincipal = await resolvePrincipal(gw.broker, key.key);
		const ownerPrincipal = await resolvePrincipal(gw.broker, operator.token);
		expect(keyPrincipal).toMatchObject({ type: "api_key", id: key.id, user_id: operator.id });

		expect((await put(keyChat, { api_key_id: key.id, can_read: true })).status).toBe(201);
		expect((await put(ownerChat, { user_id: operator.id, can_read: true })).status).toBe(201);

		expect(await can(keyPrincipal, keyChat, "can_read")).toBe(true);
		expect(await can(ownerPrincipal, keyChat, "can_read")).toBe(false);
		expect(await can(ownerPrincipal, ownerChat, "can_read")).toBe(true);
		expect(await can(keyPrincipal, ownerChat, "can_read")).toBe(false);
		const keyAccess = await chatAccess(keyPrincipal, "can_read");
		expect(keyAccess.chat_ids).toContain(keyChat);
		expect(keyAccess.chat_ids).not.toContain(ownerChat);
		const ownerAccess = await chatAccess(ownerPrincipal, "can_read");
		expect(ownerAccess.chat_ids).toContain(ownerChat);
		expect(ownerAccess.chat_ids).not.toContain(keyChat);
	});

	it("the admin (and an unscoped key of the admin) passes every check without grants", async () => {
		const chat = await newChat();
		const adminKey = await createKey(gw.baseUrl, admin);
		for (const credential of [admin, adminKey.key]) {
			const principal = await resolvePrincipal(gw.broker, credential);
			for (const right of RIGHTS) {
				expect({ right, chat: await can(principal, chat, right) }).toEqual({ right, chat: true });
				expect({ right, unknown: await can(principal, 424_242, right) }).toEqual({ right, unknown: true });
				expect(await chatAccess(principal, right)).toEqual({ all: true, chat_ids: [] });
			}
		}
		expect(await grants({ chat_id: chat })).toHaveLength(0);
		expect((await list(chat)).status).toBe(200);
		expect((await list(chat, adminKey.key)).status).toBe(200);
	});

	it("a grant to a non-admin key still needs can_manage on the chat to manage it", async () => {
		const chat = await newChat();
		const key = await createKey(gw.baseUrl, operator.token);
		expectApiError(await list(chat, key.key), 403, "FORBIDDEN");
		expect((await put(chat, { api_key_id: key.id, can_manage: true })).status).toBe(201);
		expect((await list(chat, key.key)).status).toBe(200);
		// The owner did not gain anything from its key's grant.
		expectApiError(await list(chat, operator.token), 403, "FORBIDDEN");
	});

	it("a key may not rotate or revoke a sibling key holding chat rights it lacks (its secret would carry them); its user and an admin may", async () => {
		const chat = await newChat();
		const keyA = await createKey(gw.baseUrl, operator.token, { name: "manager", scopes: ["apikeys:read", "apikeys:write", "chats:read", "chats:manage"] });
		const keyB = await createKey(gw.baseUrl, operator.token, { name: "reader", scopes: ["chats:read", "chats:manage"] });
		expect((await put(chat, { api_key_id: keyB.id, can_read: true, can_manage: true })).status).toBe(201);
		expectApiError(await list(chat, keyA.key), 403, "FORBIDDEN");

		for (const [method, path] of [["POST", `/apikeys/${keyB.id}/rotate`], ["DELETE", `/apikeys/${keyB.id}`]] as const) {
			const refused = expectApiError(await api(gw.baseUrl, method, path, keyA.key), 403, "FORBIDDEN");
			expect(refused.message).toContain(`can_read on chat ${chat}, can_manage on chat ${chat}`);
		}
		// Nothing changed: B's secret still manages the chat, and A still cannot.
		expect((await list(chat, keyB.key)).status).toBe(200);
		expectApiError(await list(chat, keyA.key), 403, "FORBIDDEN");
		expect((await gw.runtime.db.models.ApiKey.findByPk(keyB.id, { raw: true }))!.revoked_at).toBeNull();

		// Holding the same right on the chat, A may.
		expect((await put(chat, { api_key_id: keyA.id, can_read: true, can_send: true, can_manage: true })).status).toBe(201);
		const rotated = await api(gw.baseUrl, "POST", `/apikeys/${keyB.id}/rotate`, keyA.key);
		expect(rotated.status).toBe(200);
		// Its user may whatever the grants (it holds the key anyway), and so may an admin.
		const again = await api(gw.baseUrl, "POST", `/apikeys/${keyB.id}/rotate`, operator.token);
		expect(again.status).toBe(200);
		expect((await api(gw.baseUrl, "DELETE", `/apikeys/${keyB.id}`, admin)).status).toBe(204);
	});
});
