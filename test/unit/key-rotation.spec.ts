/**
 * Key rotation (services/bots/key-rotation.ts): after it ran, every bot token, Telegram webhook
 * secret and webhook signing secret (current and previous) opens with the new key alone.
 */
import { randomBytes } from "node:crypto";
import type { EncryptionKey } from "../../lib/config";
import { seal, unseal } from "../../lib/crypto";
import type { Database } from "../../lib/db/connection";
import { rotateEncryptionKeys } from "../../services/bots/key-rotation";
import { botToken, botWebhookSecret } from "../../services/bots/registry";
import { WEBHOOK_SECRET_PURPOSE as SIGNING } from "../../services/delivery/context";
import { BOT_TOKEN_PURPOSE, WEBHOOK_SECRET_PURPOSE as TELEGRAM_SECRET } from "../../services/ingest/bot-routes";
import { insertBot, migratedDatabase } from "../support/database";

const key = (id: string): EncryptionKey => ({ id, key: randomBytes(32) });

describe("rotateEncryptionKeys", () => {
	let db: Database;
	const oldKey = key("k1");
	const newKey = key("k2");
	beforeAll(async () => {
		db = await migratedDatabase();
	});
	afterAll(() => db.close());

	it("re-seals bots and webhooks under the first key; a second run has nothing left to do", async () => {
		const bot = await insertBot(db);
		await bot.update({
			token_ciphertext: seal([oldKey], BOT_TOKEN_PURPOSE, "123:token").ciphertext,
			webhook_secret_ciphertext: seal([oldKey], TELEGRAM_SECRET, "telegram-secret").ciphertext,
			key_id: "k1",
		});
		const hook = await db.models.Webhook.create({
			bot_id: bot.id,
			owner_user_id: null,
			owner_api_key_id: null,
			url: "https://example.com/hook",
			scope: "all",
			secret_ciphertext: seal([oldKey], SIGNING, "whsec_current").ciphertext,
			previous_secret_ciphertext: seal([oldKey], SIGNING, "whsec_previous").ciphertext,
			previous_secret_expires_at: new Date(Date.now() + 60_000),
			key_id: "k1",
		} as never);

		expect(await rotateEncryptionKeys(db, [newKey, oldKey])).toEqual({ active_key: "k2", bots_resealed: 1, webhooks_resealed: 1 });

		const onlyNew = [newKey];
		const botRow = (await db.models.Bot.findByPk(bot.id))!;
		expect(botRow.key_id).toBe("k2");
		expect(botToken(onlyNew, botRow)).toBe("123:token");
		expect(botWebhookSecret(onlyNew, botRow)).toBe("telegram-secret");
		const hookRow = (await db.models.Webhook.findByPk(hook.id))!;
		expect(hookRow.key_id).toBe("k2");
		expect(unseal(onlyNew, SIGNING, { ciphertext: hookRow.secret_ciphertext, keyId: hookRow.key_id })).toBe("whsec_current");
		expect(unseal(onlyNew, SIGNING, { ciphertext: hookRow.previous_secret_ciphertext!, keyId: hookRow.key_id })).toBe("whsec_previous");

		expect(await rotateEncryptionKeys(db, [newKey, oldKey])).toEqual({ active_key: "k2", bots_resealed: 0, webhooks_resealed: 0 });
	});
});
