/**
 * Which bot a webhook path belongs to, and the secret Telegram must present for it. Looked up once
 * and kept for 30 s (bots.changed clears it at once, a lookup it overtook included), so a push
 * costs no query for the bot.
 */
import { timingSafeEqual } from "node:crypto";
import type { EncryptionKey } from "../../lib/config";
import { unseal } from "../../lib/crypto";
import type { Database } from "../../lib/db/connection";
import { LoadingCache } from "../../lib/loading-cache";

export interface BotRoute {
	botId: number;
	active: boolean;
	secret: Buffer;
}

export const WEBHOOK_SECRET_PURPOSE = "telegram-webhook-secret";
export const BOT_TOKEN_PURPOSE = "bot-token";

export class BotRoutes {
	// A lookup that a bots.changed overtook is not kept: it may have read the bot as it was before
	// (deleted, or with its old secret), and would answer for it for 30 s.
	private readonly cache = new LoadingCache<string, BotRoute | null>({ max: 50_000, ttlMs: 30_000 });

	constructor(
		private readonly db: Database,
		private readonly keys: EncryptionKey[],
	) {}

	find(path: string): Promise<BotRoute | null> {
		return this.cache.get(path, () => this.load(path));
	}

	private async load(path: string): Promise<BotRoute | null> {
		const bot = await this.db.models.Bot.findOne({
			where: { webhook_path: path },
			attributes: ["id", "is_active", "webhook_secret_ciphertext", "key_id"],
			raw: true,
		});
		return bot
			? {
					botId: Number(bot.id),
					active: Boolean(bot.is_active),
					secret: Buffer.from(unseal(this.keys, WEBHOOK_SECRET_PURPOSE, { ciphertext: bot.webhook_secret_ciphertext, keyId: bot.key_id })),
				}
			: null;
	}

	clear(): void {
		this.cache.clear();
	}
}

/**
 * Constant time in the secret's content. Every secret of ours has the same length (64 hex
 * characters), so answering a wrong length at once tells an attacker nothing.
 */
export function secretMatches(route: BotRoute, presented: unknown): boolean {
	if (typeof presented !== "string" || presented.length !== route.secret.length) return false;
	const given = Buffer.from(presented);
	return given.length === route.secret.length && timingSafeEqual(route.secret, given);
}
