/**
 * Encryption key rotation: re-seals every secret the gateway keeps (bot tokens and Telegram webhook
 * secrets, outgoing webhooks' signing secrets) that is sealed under another key than the active
 * one (the first of TOKEN_ENCRYPTION_KEYS). Old keys must stay configured until this has run;
 * afterwards no row needs them. Used by `bots.rotateKeys` and `npm run cli -- bots rotate-key`.
 */
import { Op } from "sequelize";
import type { EncryptionKey } from "../../lib/config";
import { seal, unseal } from "../../lib/crypto";
import type { Database } from "../../lib/db/connection";
import { WEBHOOK_SECRET_PURPOSE as SIGNING_SECRET_PURPOSE } from "../delivery/context";
import { resealBot } from "./registry";

export interface RotationResult {
	active_key: string;
	bots_resealed: number;
	webhooks_resealed: number;
}

export async function rotateEncryptionKeys(db: Database, keys: EncryptionKey[]): Promise<RotationResult> {
	const active = keys[0]!.id;
	const stale = { key_id: { [Op.ne]: active } };
	let bots = 0;
	for (const bot of await db.models.Bot.findAll({ where: stale })) {
		await bot.update(resealBot(keys, bot));
		bots += 1;
	}
	let webhooks = 0;
	for (const hook of await db.models.Webhook.findAll({ where: stale })) {
		// Both secrets share the row's key id: a rotation overlap keeps signing with both.
		const reseal = (ciphertext: string) => seal(keys, SIGNING_SECRET_PURPOSE, unseal(keys, SIGNING_SECRET_PURPOSE, { ciphertext, keyId: hook.key_id })).ciphertext;
		await hook.update({
			secret_ciphertext: reseal(hook.secret_ciphertext),
			previous_secret_ciphertext: hook.previous_secret_ciphertext === null ? null : reseal(hook.previous_secret_ciphertext),
			key_id: active,
		});
		webhooks += 1;
	}
	return { active_key: active, bots_resealed: bots, webhooks_resealed: webhooks };
}
