/**
 * Users (admin only): POST/GET /users, GET/PATCH/DELETE /users/:id, their validation, the last-admin
 * guard, and what deleting a user does to its credentials.
 */
import type { Service } from "moleculer";
import { http, type TestGateway } from "../support/harness";
import { insertBot, insertChat } from "../support/database";
import {
	adminToken,
	api,
	createKey,
	createUser,
	errorFields,
	expectApiError,
	loginAction,
	me,
	startAuthGateway,
	type Json,
	type Res,
} from "../support/auth";

describe("users", () => {
	let gw: TestGateway;
	let admin: string;
	let adminId: number;

	beforeAll(async () => {
		gw = await startAuthGateway();
		admin = await adminToken(gw);
		adminId = Number((await me(gw.baseUrl, admin)).body.id);
	});
	afterAll(() => gw.stop());

	const users = () => gw.runtime.db.models.User.count();
	const post = (body: Json, credential = admin) => api(gw.baseUrl, "POST", "/users", credential, body);
	const patch = (id: number, body: Json, credential = admin) => api(gw.baseUrl, "PATCH", `/users/${id}`, credential, body);
	const userRow = (id: number) => gw.runtime.db.models.User.findByPk(id, { raw: true });

	function expectInvalid(res: Res, field: string) {
		expectApiError(res, 400, "VALIDATION_ERROR");
		const fields = errorFields(res);
		expect(fields.some((f) => f === field || f.startsWith(`${field}[`) || f.startsWith(`${field}.`))).toBe(true);
	}

	it("POST /users creates a user (201) with the viewer role by default, never showing the hash", async () => {
		const before = await users();
		const res = await post({ username: "Alice", password: "alice-password-1", email: "alice@example.com" });
		expect(res.status).toBe(201);
		expect(res.body).toEqual({
			id: expect.any(Number),
			username: "alice",
			email: "alice@example.com",
			roles: ["viewer"],
			is_active: true,
			last_login_at: null,
			created_at: expect.stringMatching(/Z$/),
			updated_at: expect.stringMatching(/Z$/),
		});
		expect(await users()).toBe(before + 1);
		const row = await userRow(Number(res.body.id));
		expect(row!.password_hash).toMatch(/^\$argon2id\$/);
		expect(res.text).not.toContain("alice-password-1");
	});

	it("GET /users/:id reads one user; an unknown id is 404", async () => {
		const user = await createUser(gw, admin, ["operator"]);
		const res = await api(gw.baseUrl, "GET", `/users/${user.id}`, admin);
		expect(res.status).toBe(200);
		expect(res.body).toMatchObject({ id: user.id, username: user.username, roles: ["operator"], is_active: true });
		expect(res.body).not.toHaveProperty("password_hash");
		expectApiError(await api(gw.baseUrl, "GET", "/users/999999", admin), 404, "NOT_FOUND");
	});

	it("GET /users pages with limit and next_cursor; a cursor that is not ours is 400 naming cursor", async () => {
		for (let i = 0; i < 3; i++) await post({ username: `pager-${i}`, password: "pager-password-1" });
		const total = await users();
		const seen: number[] = [];
		let cursor: string | null = null;
		let pages = 0;
		do {
			const res: Res = await api(gw.baseUrl, "GET", `/users?limit=2${cursor ? `&cursor=${cursor}` : ""}`, admin);
			expect(res.status).toBe(200);
			expect(Object.keys(res.body).sort()).toEqual(["data", "next_cursor"]);
			const data = res.body.data as Json[];
			expect(data.length).toBeLessThanOrEqual(2);
			seen.push(...data.map((u) => Number(u.id)));
			cursor = res.body.next_cursor as string | null;
			if (cursor !== null) expect(data).toHaveLength(2); // only the last page may be short
			pages += 1;
		} while (cursor !== null && pages < 50);
		expect(seen).toHaveLength(total);
		expect(new Set(seen).size).toBe(total);
		expect([...seen].sort((a, b) => a - b)).toEqual(seen);

		const first = await api(gw.baseUrl, "GET", "/users?limit=2", admin);
		expect(first.body.next_cursor).toEqual(expect.any(String));
		expectInvalid(await api(gw.baseUrl, "GET", "/users?cursor=not-a-cursor", admin), "cursor");
		expectInvalid(await api(gw.baseUrl, "GET", "/users?limit=0", admin), "limit");
		expectInvalid(await api(gw.baseUrl, "GET", "/users?limit=201", admin), "limit");
	});

	it.each([
		["a short password", { username: "shorty", password: "short" }, "password"],
		["a bad role", { username: "badrole", password: "long-enough-password", roles: ["superuser"] }, "roles"],
		["an unknown extra field", { username: "extra", password: "long-enough-password", is_admin: true }, "is_admin"],
		["a missing username", { password: "long-enough-password" }, "username"],
		["a username with spaces", { username: "has spaces", password: "long-enough-password" }, "username"],
		["a bad email", { username: "bademail", password: "long-enough-password", email: "not-an-email" }, "email"],
	])("POST /users with %s is 400 naming the field, and creates nothing", async (_name, body, field) => {
		const before = await users();
		expectInvalid(await post(body), field);
		expect(await users()).toBe(before);
	});

	it("a duplicate username is 409 CONFLICT, also in another case", async () => {
		await post({ username: "dupe", password: "dupe-password-1" });
		const before = await users();
		// The conflict names the field that is taken.
		expect(expectApiError(await post({ username: "dupe", password: "other-password-1" }), 409, "CONFLICT").details).toEqual({ field: "username" });
		expectApiError(await post({ username: "DUPE", password: "other-password-1" }), 409, "CONFLICT");
		await post({ username: "has-mail", password: "mail-password-1", email: "same@example.com" });
		const withMail = await users();
		expect(expectApiError(await post({ username: "other-mail", password: "mail-password-1", email: "same@example.com" }), 409, "CONFLICT").details).toEqual({ field: "email" });
		expect(await users()).toBe(withMail);
		expect(withMail).toBe(before + 1);
	});

	it("PATCH /users/:id changes roles, email and password; bad input is 400 and changes nothing", async () => {
		const user = await createUser(gw, admin, ["viewer"]);
		const res = await patch(user.id, { roles: ["operator", "viewer"], email: "ops@example.com" });
		expect(res.status).toBe(200);
		expect(res.body).toMatchObject({ id: user.id, roles: ["operator", "viewer"], email: "ops@example.com" });
		const rowBefore = await userRow(user.id);
		expectInvalid(await patch(user.id, { password: "short" }), "password");
		expectInvalid(await patch(user.id, { roles: [] }), "roles");
		const badRole = await patch(user.id, { roles: ["superuser"] });
		expectInvalid(badRole, "roles");
		expect(JSON.stringify(badRole.body)).toContain("must be one of: admin, operator, viewer");
		expectInvalid(await patch(user.id, { username: "renamed" }), "username");
		expect(await userRow(user.id)).toEqual(rowBefore);
		expectApiError(await patch(999999, { email: "x@example.com" }), 404, "NOT_FOUND");
	});

	it("PATCH /users/:id with roles alone moves updated_at, in the answer and in a later GET", async () => {
		const user = await createUser(gw, admin, ["viewer"]);
		const before = (await api(gw.baseUrl, "GET", `/users/${user.id}`, admin)).body.updated_at as string;
		await new Promise((resolve) => setTimeout(resolve, 10));
		const res = await patch(user.id, { roles: ["operator"] });
		expect(res.status).toBe(200);
		expect(res.body.updated_at).not.toBe(before);
		expect((await api(gw.baseUrl, "GET", `/users/${user.id}`, admin)).body.updated_at).toBe(res.body.updated_at);
	});

	it("a new password ends the user's sessions; the new password logs in, the old one does not", async () => {
		const user = await createUser(gw, admin, ["viewer"]);
		const session = await loginAction(gw.broker, user.username, user.password);
		expect((await patch(user.id, { password: "a-brand-new-password" })).status).toBe(200);
		const refreshed = await http(gw.baseUrl, "POST", "/api/v1/auth/refresh", { body: { refresh_token: session.refresh_token } });
		expectApiError(refreshed, 401, "UNAUTHORIZED");
		await expect(loginAction(gw.broker, user.username, user.password)).rejects.toMatchObject({ code: 401 });
		expect((await loginAction(gw.broker, user.username, "a-brand-new-password")).user.id).toBe(user.id);
	});

	it("DELETE /users/:id answers 204 and the user is gone", async () => {
		const user = await createUser(gw, admin, ["viewer"]);
		const res = await api(gw.baseUrl, "DELETE", `/users/${user.id}`, admin);
		expect(res.status).toBe(204);
		expect(res.text).toBe("");
		expect(await userRow(user.id)).toBeNull();
		expectApiError(await api(gw.baseUrl, "GET", `/users/${user.id}`, admin), 404, "NOT_FOUND");
		expectApiError(await api(gw.baseUrl, "DELETE", `/users/${user.id}`, admin), 404, "NOT_FOUND");
	});

	it("the last active admin cannot be deleted, demoted or disabled (409), and stays as it was", async () => {
		const rowBefore = await userRow(adminId);
		expectApiError(await api(gw.baseUrl, "DELETE", `/users/${adminId}`, admin), 409, "CONFLICT");
		expectApiError(await patch(adminId, { roles: ["operator"] }), 409, "CONFLICT");
		expectApiError(await patch(adminId, { is_active: false }), 409, "CONFLICT");
		expect(await userRow(adminId)).toEqual(rowBefore);
		expect((await api(gw.baseUrl, "GET", `/users/${adminId}`, admin)).body).toMatchObject({ roles: ["admin"], is_active: true });
		expect((await me(gw.baseUrl, admin)).status).toBe(200);
	});

	it("a disabled second admin does not count: the first still cannot step down; an active one can go", async () => {
		const second = await createUser(gw, admin, ["admin"]);
		expect((await patch(second.id, { is_active: false })).status).toBe(200);
		expectApiError(await patch(adminId, { roles: ["viewer"] }), 409, "CONFLICT");
		expect((await api(gw.baseUrl, "GET", `/users/${adminId}`, admin)).body).toMatchObject({ roles: ["admin"] });

		// While another active admin remains, an admin may be demoted or deleted.
		const third = await createUser(gw, admin, ["admin"]);
		const demoted = await patch(third.id, { roles: ["operator"] });
		expect(demoted.status).toBe(200);
		expect(demoted.body).toMatchObject({ roles: ["operator"] });
		expect((await api(gw.baseUrl, "DELETE", `/users/${second.id}`, admin)).status).toBe(204);
		expect(await userRow(second.id)).toBeNull();
	});

	it("an admin's key narrowed to users:* gives no user more than it holds: no admin, no operator, no takeover of an admin (403, nothing changed)", async () => {
		const narrowed = await createKey(gw.baseUrl, admin, { name: "user-manager", scopes: ["users:read", "users:write"] });
		const before = await users();
		for (const roles of [["admin"], ["operator"], ["viewer"]]) {
			expectApiError(await post({ username: `escalate-${roles[0]}`, password: "password-long-enough", roles }, narrowed.key), 403, "FORBIDDEN");
		}
		expect(await users()).toBe(before);
		const hashBefore = (await userRow(adminId))!.password_hash;
		expectApiError(await patch(adminId, { password: "taken-over-password" }, narrowed.key), 403, "FORBIDDEN");
		expect((await userRow(adminId))!.password_hash).toBe(hashBefore);
		const other = await createUser(gw, admin, ["admin"]);
		expectApiError(await api(gw.baseUrl, "DELETE", `/users/${other.id}`, narrowed.key), 403, "FORBIDDEN");
		expect(await userRow(other.id)).not.toBeNull();
		// The admin's unscoped key, and the admin, still may.
		const full = await createKey(gw.baseUrl, admin, { name: "full" });
		const created = await post({ username: "made-by-full-key", password: "password-long-enough", roles: ["operator"] }, full.key);
		expect(created.status).toBe(201);
	});

	it("the narrowed key cannot bring back a disabled admin with a password of its choosing (403, nothing changed)", async () => {
		const narrowed = await createKey(gw.baseUrl, admin, { name: "user-manager-2", scopes: ["users:read", "users:write", "apikeys:read", "apikeys:write"] });
		const dormant = await createUser(gw, admin, ["admin"]);
		const dormantKey = await createKey(gw.baseUrl, dormant.token, { name: "dormant admin key" });
		expect((await patch(dormant.id, { is_active: false })).status).toBe(200);
		const before = (await userRow(dormant.id))!;
		const keyHash = async () => (await gw.runtime.db.models.ApiKey.findByPk(dormantKey.id))!.key_hash;
		const hashBefore = await keyHash();
		expectApiError(await patch(dormant.id, { is_active: true, password: "attacker-password-1" }, narrowed.key), 403, "FORBIDDEN");
		expectApiError(await patch(dormant.id, { password: "attacker-password-1" }, narrowed.key), 403, "FORBIDDEN");
		// Nor is the admin's key within its reach (a scoped key of an admin sees its own user's keys only).
		expectApiError(await api(gw.baseUrl, "POST", `/apikeys/${dormantKey.id}/rotate`, narrowed.key), 404, "NOT_FOUND");
		const after = (await userRow(dormant.id))!;
		expect([after.password_hash, after.is_active]).toEqual([before.password_hash, before.is_active]);
		expect(await keyHash()).toBe(hashBefore);
		// A disabled viewer is within reach of a key holding what a viewer holds.
		const viewer = await createUser(gw, admin, ["viewer"]);
		const viewerPowers = ((await me(gw.baseUrl, viewer.token)).body as { permissions: string[] }).permissions;
		const wider = await createKey(gw.baseUrl, admin, { name: "user-manager-3", scopes: ["users:read", "users:write", ...viewerPowers.filter((p) => !p.startsWith("users:"))] });
		expect((await patch(viewer.id, { is_active: false })).status).toBe(200);
		expect((await patch(viewer.id, { is_active: true }, wider.key)).status).toBe(200);
	});

	it("a narrowed admin key may not take over a user whose grants, or whose keys' grants, reach chats it cannot (403 naming them, nothing changed)", async () => {
		const botId = Number((await insertBot(gw.runtime.db)).id);
		const [chatA, chatB] = [Number((await insertChat(gw.runtime.db, botId, 91_001)).id), Number((await insertChat(gw.runtime.db, botId, 91_002)).id)];
		const grant = (chat: number, body: Json) => api(gw.baseUrl, "PUT", `/chats/${chat}/permissions`, admin, body);
		const scopes = ["users:read", "users:write", "chats:read", "messages:read"];
		const narrowed = await createKey(gw.baseUrl, admin, { name: "user-manager-grants", scopes });
		expect((await grant(chatA, { api_key_id: narrowed.id, can_read: true })).status).toBe(201);

		const reader = await createUser(gw, admin, ["viewer"]);
		expect((await grant(chatB, { user_id: reader.id, can_read: true })).status).toBe(201);
		const viaKey = await createUser(gw, admin, ["viewer"]);
		const viaKeysKey = await createKey(gw.baseUrl, admin, { name: "reads chat B", user_id: viaKey.id });
		expect((await grant(chatB, { api_key_id: viaKeysKey.id, can_read: true })).status).toBe(201);
		for (const target of [reader, viaKey]) {
			const before = (await userRow(target.id))!;
			for (const body of [{ password: "attacker-chosen-1" }, { is_active: false }]) {
				expect(expectApiError(await patch(target.id, body, narrowed.key), 403, "FORBIDDEN").message).toContain(`can_read on chat ${chatB}`);
			}
			expectApiError(await api(gw.baseUrl, "DELETE", `/users/${target.id}`, narrowed.key), 403, "FORBIDDEN");
			const after = (await userRow(target.id))!;
			expect([after.password_hash, after.is_active]).toEqual([before.password_hash, before.is_active]);
		}
		// A user whose grants are within the key's may be managed; the admin is not limited.
		const within = await createUser(gw, admin, ["viewer"]);
		expect((await grant(chatA, { user_id: within.id, can_read: true })).status).toBe(201);
		expect((await patch(within.id, { password: "chosen-by-manager-1" }, narrowed.key)).status).toBe(200);
		expect((await patch(reader.id, { password: "chosen-by-admin-1" })).status).toBe(200);
	});

	it("a viewer (and an operator) get 403 on /users, and nothing is created", async () => {
		const viewer = await createUser(gw, admin, ["viewer"]);
		const operator = await createUser(gw, admin, ["operator"]);
		const before = await users();
		for (const who of [viewer, operator]) {
			expectApiError(await api(gw.baseUrl, "GET", "/users", who.token), 403, "FORBIDDEN");
			expectApiError(await api(gw.baseUrl, "GET", `/users/${adminId}`, who.token), 403, "FORBIDDEN");
			expectApiError(await post({ username: `by-${who.username}`, password: "long-enough-password" }, who.token), 403, "FORBIDDEN");
			expectApiError(await patch(who.id, { roles: ["admin"] }, who.token), 403, "FORBIDDEN");
			expectApiError(await api(gw.baseUrl, "DELETE", `/users/${adminId}`, who.token), 403, "FORBIDDEN");
		}
		expect(await users()).toBe(before);
		expect((await api(gw.baseUrl, "GET", `/users/${viewer.id}`, admin)).body).toMatchObject({ roles: ["viewer"] });
		expect(await userRow(adminId)).not.toBeNull();
	});

	it("a request refused for a missing permission leaves no action running on the node", async () => {
		const viewer = await createUser(gw, admin, ["viewer"]);
		const auth = gw.broker.getLocalService("auth") as Service & { _trackedContexts: Array<{ action?: { name: string } }> };
		const running = () => auth._trackedContexts.map((ctx) => ctx.action?.name);
		const before = running();
		expectApiError(await api(gw.baseUrl, "GET", "/users", viewer.token), 403, "FORBIDDEN");
		// Moleculer waits for these at shutdown (up to 10 s): a refused request must not stay among them.
		expect(running()).toEqual(before);
	});

	it("deleting a user makes its API keys fail at once (401) and removes them", async () => {
		const operator = await createUser(gw, admin, ["operator"]);
		const { id, key } = await createKey(gw.baseUrl, operator.token);
		expect((await me(gw.baseUrl, key)).status).toBe(200);
		expect((await api(gw.baseUrl, "DELETE", `/users/${operator.id}`, admin)).status).toBe(204);
		expectApiError(await me(gw.baseUrl, key), 401, "UNAUTHORIZED");
		expect(await gw.runtime.db.models.ApiKey.findByPk(id)).toBeNull();
	});

	it("disabling a user makes its API keys fail at once (401)", async () => {
		const operator = await createUser(gw, admin, ["operator"]);
		const { key } = await createKey(gw.baseUrl, operator.token);
		expect((await me(gw.baseUrl, key)).status).toBe(200);
		expect((await patch(operator.id, { is_active: false })).status).toBe(200);
		expectApiError(await me(gw.baseUrl, key), 401, "UNAUTHORIZED");
	});
});
