/**
 * A bot whose token Telegram refuses (401 or 404 on any method: revoked or deleted at BotFather).
 * The bot's `last_error` says so, in these exact words, and is what the rest of the gateway reads:
 * while it does, the bot's queue is paused (no Telegram call per queued message) and new sends to it
 * are refused at once (503 with `bot_token_refused: true`). It is cleared by a new token
 * (PATCH /bots/:id {token}), or when the token works again (a successful getUpdates, or the
 * reconciler's getWebhookInfo).
 */
import { Op } from "sequelize";
import type { Database } from "../../lib/db/connection";
import { GatewayError } from "../../lib/errors";
import { TelegramApiError } from "../../lib/telegram/client";

export const TOKEN_REFUSED = "Telegram refuses the bot's token; register the new one (PATCH /bots/:id {token})";

/** Telegram's answer to a token it does not know: 401 Unauthorized, or 404 Not Found for a malformed or deleted one. */
export function isTokenRefusal(err: unknown): err is TelegramApiError {
	return err instanceof TelegramApiError && (err.errorCode === 401 || err.errorCode === 404);
}

export function isTokenRefused(bot: { last_error: string | null } | null | undefined): boolean {
	return bot?.last_error === TOKEN_REFUSED;
}

/** Records the refusal; true when it was not recorded before (the caller's cue to log it once). */
export async function markTokenRefused(db: Database, botId: number): Promise<boolean> {
	const [changed] = await db.models.Bot.update(
		{ last_error: TOKEN_REFUSED },
		{ where: { id: botId, [Op.or]: [{ last_error: null }, { last_error: { [Op.ne]: TOKEN_REFUSED } }] } },
	);
	return changed > 0;
}

/** Telegram took the token again: the refusal goes (only it: another problem's last_error stays). True when there was one. */
export async function clearTokenRefused(db: Database, botId: number): Promise<boolean> {
	const [changed] = await db.models.Bot.update({ last_error: null }, { where: { id: botId, last_error: TOKEN_REFUSED } });
	return changed > 0;
}

/** The answer to a send to a bot whose token is refused: the gateway's credential is the problem, not the request. */
export function tokenRefusedError(botId: number): GatewayError {
	return new GatewayError("UNAVAILABLE", `Telegram refuses bot ${botId}'s token: nothing can be sent until an operator gives the gateway the bot's new token`, {
		bot_id: botId,
		bot_token_refused: true,
	});
}
