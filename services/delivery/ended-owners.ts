/**
 * Webhooks made with an API key belong to that key. A key is revoked or runs out, never deleted, so
 * its webhooks would stay active for ever, sent nothing (their owner resolves to no one), resolved
 * again at every audience rebuild, and manageable only by that dead key (or an admin). They are
 * disabled instead, saying why; the key's user can see them through an admin, or make new ones.
 */
import { Op } from "sequelize";
import type { Database } from "../../lib/db/connection";

/**
 * Disables the active webhooks whose owning key is revoked or expired; resolves with how many. With
 * `keyId` (a change to that one key was heard) only that key is looked at, not every owning key.
 */
export async function disableWebhooksOfEndedKeys(db: Database, now = new Date(), keyId?: number): Promise<number> {
	const { Webhook, ApiKey } = db.models;
	let ids: number[];
	if (keyId !== undefined) ids = [keyId];
	else {
		const owners = await Webhook.findAll({ attributes: ["owner_api_key_id"], where: { is_active: true, owner_api_key_id: { [Op.ne]: null } }, group: ["owner_api_key_id"], raw: true });
		ids = owners.map((o) => Number(o.owner_api_key_id));
	}
	if (ids.length === 0) return 0;
	const ended = await ApiKey.findAll({
		attributes: ["id", "revoked_at"],
		where: { id: ids, [Op.or]: [{ revoked_at: { [Op.ne]: null } }, { expires_at: { [Op.lte]: now } }] },
		raw: true,
	});
	let disabled = 0;
	for (const key of ended) {
		const [changed] = await Webhook.update(
			{ is_active: false, disabled_reason: key.revoked_at ? "its API key was revoked" : "its API key expired" },
			{ where: { owner_api_key_id: key.id, is_active: true } },
		);
		disabled += changed;
	}
	return disabled;
}
