/**
 * `bots rotate-key` (bots.rotateKeys) while secrets change under it: a bot registered again, or a
 * webhook's secret rotated, keeps its new secret. (The rotation re-sealed rows read at its start and
 * wrote them back unconditionally: the bot's Telegram pushes were refused for good, and the webhook
 * signed with a secret its owner was told was replaced.)
 */
import { randomBytes } from "node:crypto";
import { seal, unseal } from "../../lib/crypto";
import { SYSTEM_PRINCIPAL } from "../../services/auth/principal";
import { WEBHOOK_SECRET_PURPOSE as SIGNING } from "../../services/delivery/context";
import { BOT_TOKEN_PURPOSE, WEBHOOK_SECRET_PURPOSE as TELEGRAM_SECRET } from "../../services/ingest/bot-routes";
import { startTelegramGateway, type TelegramGateway } from "../support/telegram-gateway";

const K1 = randomBytes(32).toString("base64");
const K2 = randomBytes(32).toString("base64");
const OLD_KEY = [{ id: "k1", key: Buffer.from(K1, "base64") }];
/** Stale rows ahead of the ones under test, so that the rotation is still running when they change. */
const FILLER = 600;

describe("encryption key rotation while secrets change", () => {
	let t: TelegramGateway;

	const until = async (check: () => Promise<boolean>) => {
		const deadline = Date.now() + 20_000;
		while (!(await check())) {
			if (Date.now() > deadline) throw new Error("timed out");
			await new Promise((r) => setTimeout(r, 2));
		}
	};
	const rotate = () => t.gw.broker.call("bots.rotateKeys", {}, { meta: { principal: SYSTEM_PRINCIPAL } });

	beforeEach(async () => {
		t = await startTelegramGateway({ mode: "webhook", env: { TOKEN_ENCRYPTION_KEYS: `k2:${K2},k1:${K1}`, LOG_LEVEL: "warn" } });
	}, 60_000);
	afterEach(() => t.stop());

	it("a bot registered again while the rotation runs keeps the webhook secret it gave Telegram: its pushes are accepted", async () => {
		const { Bot } = t.gw.runtime.db.models;
		await Bot.bulkCreate(
			Array.from({ length: FILLER }, (_, i) => ({
				telegram_id: 1_000_000 + i,
				username: `filler_${i}`,
				display_name: "filler",
				token_ciphertext: seal(OLD_KEY, BOT_TOKEN_PURPOSE, `${1_000_000 + i}:${"A".repeat(35)}`).ciphertext,
				webhook_secret_ciphertext: seal(OLD_KEY, TELEGRAM_SECRET, "0".repeat(64)).ciphertext,
				key_id: "k1",
				webhook_path: randomBytes(32).toString("hex"),
				mode: "webhook",
				is_active: false,
			})) as never,
		);
		const { bot, token } = await t.addBot();
		expect((await t.api("DELETE", `/bots/${bot.id}`)).status).toBe(204);
		// Sealed under the old key, as every row is before a rotation.
		const row = (await Bot.findByPk(bot.id))!;
		const secret = unseal(t.gw.config.encryptionKeys, TELEGRAM_SECRET, { ciphertext: row.webhook_secret_ciphertext, keyId: row.key_id });
		await row.update({ token_ciphertext: seal(OLD_KEY, BOT_TOKEN_PURPOSE, token).ciphertext, webhook_secret_ciphertext: seal(OLD_KEY, TELEGRAM_SECRET, secret).ciphertext, key_id: "k1" });

		const rotation = rotate();
		await until(async () => (await Bot.count({ where: { key_id: "k2" } })) >= FILLER / 3);
		expect((await t.api("POST", "/bots", { token })).status).toBe(201);
		await rotation;

		t.telegram.userSends(token, { chat_id: 4242, text: "after the rotation" });
		await t.telegram.waitFor(() => t.telegram.pushLog(token).length > 0, 10_000);
		await t.telegram.waitFor(() => t.telegram.pendingUpdates(token).length === 0, 5_000).catch(() => undefined);
		expect(t.telegram.pushLog(token).map((p) => (p as { status?: number }).status)).not.toContain(401);
		expect(await t.gw.runtime.db.models.Message.count({ where: { text: "after the rotation" } })).toBe(1);
	});

	it("a webhook secret rotated while the key rotation runs is the one that signs afterwards", async () => {
		const { Webhook } = t.gw.runtime.db.models;
		await Webhook.bulkCreate(
			Array.from({ length: FILLER }, () => ({
				url: "https://example.com/hook",
				scope: "all",
				secret_ciphertext: seal(OLD_KEY, SIGNING, `whsec_${randomBytes(24).toString("base64")}`).ciphertext,
				key_id: "k1",
				is_active: false,
				owner_user_id: 1,
			})) as never,
		);
		const created = await t.api<{ id: number; secret: string }>("POST", "/webhooks", { url: "http://127.0.0.1:9/hook", scope: "all" });
		expect(created.status).toBe(201);
		await (await Webhook.findByPk(created.body.id))!.update({ secret_ciphertext: seal(OLD_KEY, SIGNING, created.body.secret).ciphertext, key_id: "k1" });

		const rotation = rotate();
		await until(async () => (await Webhook.count({ where: { key_id: "k2" } })) >= FILLER / 3);
		const rotated = await t.api<{ secret: string }>("POST", `/webhooks/${created.body.id}/rotate-secret`);
		expect(rotated.status).toBe(200);
		await rotation;

		const row = (await Webhook.findByPk(created.body.id, { raw: true }))!;
		const keys = t.gw.config.encryptionKeys;
		expect(unseal(keys, SIGNING, { ciphertext: row.secret_ciphertext, keyId: row.key_id })).toBe(rotated.body.secret);
		// And the replaced one keeps signing for the overlap.
		expect(row.previous_secret_ciphertext && unseal(keys, SIGNING, { ciphertext: row.previous_secret_ciphertext, keyId: row.key_id })).toBe(created.body.secret);
	});
});
