/**
 * A webhook made with an API key belongs to that key. Keys are revoked or run out, never deleted:
 * their webhooks are disabled, saying why, instead of staying active for ever (sent nothing, resolved
 * at every audience rebuild, manageable by no one but an admin).
 */
import { type TestGateway } from "../support/harness";
import { adminToken, api, createKey, createUser, startAuthGateway, type TestUser } from "../support/auth";
import { disableWebhooksOfEndedKeys } from "../../services/delivery/ended-owners";

describe("webhooks of revoked and expired API keys", () => {
	let gw: TestGateway;
	let admin: string;
	let operator: TestUser;

	beforeAll(async () => {
		gw = await startAuthGateway({ nodes: [["api", "auth", "delivery"]], env: { LOG_LEVEL: "warn" } });
		admin = await adminToken(gw);
		operator = await createUser(gw, admin, ["operator"]);
	});
	afterAll(() => gw.stop());

	const keyWithWebhook = async (expiresAt?: string) => {
		const key = await createKey(gw.baseUrl, operator.token, { scopes: ["webhooks:read", "webhooks:write", "messages:read"], ...(expiresAt ? { expires_at: expiresAt } : {}) });
		const created = await api(gw.baseUrl, "POST", "/webhooks", key.key, { url: "https://hooks.example.com/k", scope: "all" });
		expect(created.status).toBe(201);
		return { key, webhookId: Number(created.body.id) };
	};
	const asAdmin = async (id: number) => (await api(gw.baseUrl, "GET", `/webhooks/${id}`, admin)).body;

	it("revoking the key disables its webhooks at once; the operator's own webhooks stay", async () => {
		const own = await api(gw.baseUrl, "POST", "/webhooks", operator.token, { url: "https://hooks.example.com/own", scope: "all" });
		const { key, webhookId } = await keyWithWebhook();
		const other = await keyWithWebhook();
		expect((await api(gw.baseUrl, "DELETE", `/apikeys/${key.id}`, operator.token)).status).toBe(204);

		const deadline = Date.now() + 2_000;
		while ((await asAdmin(webhookId)).is_active && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
		expect(await asAdmin(webhookId)).toMatchObject({ is_active: false, disabled_reason: "its API key was revoked" });
		expect(await asAdmin(other.webhookId)).toMatchObject({ is_active: true });
		expect(await asAdmin(Number(own.body.id))).toMatchObject({ is_active: true });

		// Switched on again it would stay active and send nothing (its owner resolves to no one): 409, unchanged.
		const again = await api(gw.baseUrl, "PATCH", `/webhooks/${webhookId}`, admin, { is_active: true });
		expect({ status: again.status, code: (again.body as { error: { code: string; message: string } }).error.code }).toEqual({ status: 409, code: "CONFLICT" });
		expect((again.body as { error: { message: string } }).error.message).toContain(`API key ${key.id}, which was revoked`);
		expect(await asAdmin(webhookId)).toMatchObject({ is_active: false, disabled_reason: "its API key was revoked" });
		// Other changes to it are still allowed (an admin may fix its URL before deleting it, say).
		expect((await api(gw.baseUrl, "PATCH", `/webhooks/${webhookId}`, admin, { url: "https://hooks.example.com/k2" })).status).toBe(200);
	});

	it("a key that ran out has its webhooks disabled by the periodic check", async () => {
		const { key, webhookId } = await keyWithWebhook(new Date(Date.now() + 60 * 60_000).toISOString());
		expect(await disableWebhooksOfEndedKeys(gw.runtime.db)).toBe(0);
		await gw.runtime.db.models.ApiKey.update({ expires_at: new Date(Date.now() - 1_000) }, { where: { id: key.id } });
		expect(await disableWebhooksOfEndedKeys(gw.runtime.db)).toBe(1);
		expect(await asAdmin(webhookId)).toMatchObject({ is_active: false, disabled_reason: "its API key expired" });
		expect(await disableWebhooksOfEndedKeys(gw.runtime.db)).toBe(0);
		expect((await api(gw.baseUrl, "PATCH", `/webhooks/${webhookId}`, admin, { is_active: true })).status).toBe(409);
		expect((await api(gw.baseUrl, "PUT", `/webhooks/${webhookId}`, admin, { url: "https://hooks.example.com/k", scope: "all", is_active: true })).status).toBe(409);
		expect(await asAdmin(webhookId)).toMatchObject({ is_active: false });
	});

	it("a change to one key looks at that key only: another key that ran out waits for the periodic check", async () => {
		const ranOut = await keyWithWebhook(new Date(Date.now() + 60 * 60_000).toISOString());
		const revoked = await keyWithWebhook();
		// Runs out without a change being announced (as a key passing its expires_at does).
		await gw.runtime.db.models.ApiKey.update({ expires_at: new Date(Date.now() - 1_000) }, { where: { id: ranOut.key.id } });
		expect((await api(gw.baseUrl, "DELETE", `/apikeys/${revoked.key.id}`, operator.token)).status).toBe(204);
		const deadline = Date.now() + 2_000;
		while ((await asAdmin(revoked.webhookId)).is_active && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
		expect(await asAdmin(revoked.webhookId)).toMatchObject({ is_active: false, disabled_reason: "its API key was revoked" });
		expect(await asAdmin(ranOut.webhookId)).toMatchObject({ is_active: true });
		// Named, or in the periodic look at every key, it is disabled.
		expect(await disableWebhooksOfEndedKeys(gw.runtime.db, new Date(), revoked.key.id)).toBe(0);
		expect(await disableWebhooksOfEndedKeys(gw.runtime.db, new Date(), ranOut.key.id)).toBe(1);
		expect(await asAdmin(ranOut.webhookId)).toMatchObject({ is_active: false, disabled_reason: "its API key expired" });
	});
});
