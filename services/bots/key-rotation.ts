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

/** How often a row that changed under the rotation is read again before it is left for the next run. */
const TRIES_PER_ROW = 5;

/**
 * Writes each re-sealed row only if its secrets are still the ones read: a bot registered again, or
 * a webhook secret rotated, while the rotation runs keeps its new secret (an unconditional write put
 * the old one back: the bot's pushes were refused for good, the webhook signed with a retired secret).
 * A row that changed is read again and re-sealed if it still needs it.
 */
export async function rotateEncryptionKeys(db: Database, keys: EncryptionKey[]): Promise<RotationResult> {
	const active = keys[0]!.id;
	const stale = { key_id: { [Op.ne]: active } };
	const { Bot, Webhook } = db.models;
	let bots = 0;
	for (const { id } of await Bot.findAll({ attributes: ["id"], where: stale, raw: true })) {
		for (let tries = 0; tries < TRIES_PER_ROW; tries++) {
			const bot = await Bot.findOne({ where: { id, ...stale }, raw: true });
			if (!bot) break; // gone, or sealed under the active key by now
			const unchanged = { id, key_id: bot.key_id, token_ciphertext: bot.token_ciphertext, webhook_secret_ciphertext: bot.webhook_secret_ciphertext };
			const [changed] = await Bot.update(resealBot(keys, bot), { where: unchanged });
			if (changed === 1) {
				bots += 1;
				break;
			}
		}
	}
	let webhooks = 0;
	for (const { id } of await Webhook.findAll({ attributes: ["id"], where: stale, raw: true })) {
		for (let tries = 0; tries < TRIES_PER_ROW; tries++) {
			const hook = await Webhook.findOne({ where: { id, ...stale }, raw: true });
			if (!hook) break;
			// Both secrets share the row's key id: a rotation overlap keeps signing with both.
			const reseal = (ciphertext: string) => seal(keys, SIGNING_SECRET_PURPOSE, unseal(keys, SIGNING_SECRET_PURPOSE, { ciphertext, keyId: hook.key_id })).ciphertext;
			const unchanged = { id, key_id: hook.key_id, secret_ciphertext: hook.secret_ciphertext, previous_secret_ciphertext: hook.previous_secret_ciphertext };
			const [changed] = await Webhook.update(
				{
					secret_ciphertext: reseal(hook.secret_ciphertext),
					previous_secret_ciphertext: hook.previous_secret_ciphertext === null ? null : reseal(hook.previous_secret_ciphertext),
					key_id: active,
				},
				{ where: unchanged },
			);
			if (changed === 1) {
				webhooks += 1;
				break;
			}
		}
	}
	return { active_key: active, bots_resealed: bots, webhooks_resealed: webhooks };
}
