/**
 * Which bot a webhook path belongs to, and the secret Telegram must present for it. Looked up once
 * and kept for 30 s (bots.changed clears it at once), so a push costs no query for the bot.
 */
import { timingSafeEqual } from "node:crypto";
import { LRUCache } from "lru-cache";
import type { EncryptionKey } from "../../lib/config";
import { unseal } from "../../lib/crypto";
import type { Database } from "../../lib/db/connection";

export interface BotRoute {
	botId: number;
	active: boolean;
	secret: Buffer;
}

export const WEBHOOK_SECRET_PURPOSE = "telegram-webhook-secret";
export const BOT_TOKEN_PURPOSE = "bot-token";

export class BotRoutes {
	private readonly cache = new LRUCache<string, { route: BotRoute | null }>({ max: 50_000, ttl: 30_000 });

	constructor(
		private readonly db: Database,
		private readonly keys: EncryptionKey[],
	) {}

	async find(path: string): Promise<BotRoute | null> {
		const cached = this.cache.get(path);
		if (cached) return cached.route;
		const bot = await this.db.models.Bot.findOne({
			where: { webhook_path: path },
			attributes: ["id", "is_active", "webhook_secret_ciphertext", "key_id"],
			raw: true,
		});
		const route = bot
			? {
					botId: Number(bot.id),
					active: Boolean(bot.is_active),
					secret: Buffer.from(unseal(this.keys, WEBHOOK_SECRET_PURPOSE, { ciphertext: bot.webhook_secret_ciphertext, keyId: bot.key_id })),
				}
			: null;
		this.cache.set(path, { route });
		return route;
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
