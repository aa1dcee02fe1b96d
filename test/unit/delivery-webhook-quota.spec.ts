/**
 * Active webhooks per user (services/delivery/webhook-quota.ts), on a migrated SQLite database:
 * a key's webhooks count against its user, disabled ones not at all, and creates racing each other
 * never pass the cap together. WEBHOOKS_PER_USER_MAX is read and checked like the other settings.
 */
import type { Transaction } from "sequelize";
import { ConfigError, loadConfig } from "../../lib/config";
import type { Database } from "../../lib/db/connection";
import { toApiError } from "../../lib/errors";
import { activeWebhooksOf, owningUsersOf, withinWebhookLimit } from "../../services/delivery/webhook-quota";
import { tempDir } from "../support/harness";
import { migratedDatabase } from "../support/database";

describe("webhooks per user", () => {
	let db: Database;
	let nextUser = 0;

	beforeAll(async () => {
		db = await migratedDatabase();
	});
	afterAll(() => db.close());

	const user = async () => (await db.models.User.create({ username: `quota-${++nextUser}`, email: null, password_hash: "x", last_login_at: null } as never)).id;
	const key = async (userId: number) =>
		(await db.models.ApiKey.create({ user_id: userId, name: "k", prefix: `tgw_${nextUser}`, key_hash: `h${Math.random()}`, scopes: null, rate_limit: null, expires_at: null, revoked_at: null, last_used_at: null } as never)).id;
	const webhook = (owner: { user?: number; key?: number }, isActive = true, transaction?: Transaction) =>
		db.models.Webhook.create(
			{
				owner_user_id: owner.user ?? null,
				owner_api_key_id: owner.key ?? null,
				url: "https://example.com/h",
				scope: "all",
				secret_ciphertext: "x",
				key_id: "x",
				is_active: isActive,
			} as never,
			{ transaction },
		);

	it("counts a user's active webhooks, its API keys' included, and no one else's", async () => {
		const [alice, bob] = [await user(), await user()];
		const aliceKey = await key(alice);
		const rows = [await webhook({ user: alice }), await webhook({ key: aliceKey }), await webhook({ user: alice }, false), await webhook({ user: bob }), await webhook({})];
		expect(await activeWebhooksOf(db, alice)).toBe(2);
		expect(await activeWebhooksOf(db, bob)).toBe(1);
		const keyUsers = new Map<number, number>();
		expect(await owningUsersOf(db, rows, keyUsers)).toEqual(new Map([[rows[0]!.id, alice], [rows[1]!.id, alice], [rows[2]!.id, alice], [rows[3]!.id, bob], [rows[4]!.id, 0]]));
		expect(keyUsers.get(aliceKey)).toBe(alice);
	});

	it("refuses past the limit with 409 naming the field and the limit, and stores nothing", async () => {
		const owner = await user();
		for (let i = 0; i < 2; i++) await withinWebhookLimit(db, owner, 2, "webhooks", (t) => webhook({ user: owner }, true, t));
		const work = jest.fn();
		const refused = await withinWebhookLimit(db, owner, 2, "webhooks", work).catch((err: unknown) => err);
		expect(toApiError(refused)).toMatchObject({ status: 409, body: { error: { code: "CONFLICT", details: { field: "webhooks", limit: 2 } } } });
		expect(work).not.toHaveBeenCalled();
		// The system's own webhooks (no user) have no cap.
		expect(await withinWebhookLimit(db, 0, 0, "webhooks", async () => "system")).toBe("system");
	});

	it("creates racing each other pass the limit together never", async () => {
		const owner = await user();
		const ownerKey = await key(owner);
		const results = await Promise.allSettled(
			Array.from({ length: 12 }, (_, i) => withinWebhookLimit(db, owner, 5, "webhooks", (t) => webhook(i % 2 ? { user: owner } : { key: ownerKey }, true, t))),
		);
		expect(results.filter((r) => r.status === "fulfilled")).toHaveLength(5);
		expect(await activeWebhooksOf(db, owner)).toBe(5);
	});
});

describe("WEBHOOKS_PER_USER_MAX", () => {
	const load = (value?: string) => loadConfig({ DATA_DIR: tempDir(), ...(value === undefined ? {} : { WEBHOOKS_PER_USER_MAX: value }) });

	it("is 100 by default, and takes a positive whole number", () => {
		expect(load().webhooksPerUserMax).toBe(100);
		expect(load("5").webhooksPerUserMax).toBe(5);
	});

	it.each(["0", "-1", "1.5", "ten", "1e3"])("refuses %p, naming the setting", (value) => {
		expect(() => load(value)).toThrow(ConfigError);
		expect(() => load(value)).toThrow(/WEBHOOKS_PER_USER_MAX must be a positive integer/);
	});
});
