/**
 * Retention of telegram_updates. A row is there only to recognise Telegram pushing the same update
 * again (its payload is never read), which Telegram does for 24 hours at most: past the
 * de-duplication window (TELEGRAM_UPDATE_RETENTION_HOURS) ingest treats it as forgotten already
 * (store.ts), and it only takes disk. Removing it sets its messages' update_row_id to NULL, which
 * the index of migration 0012 keeps from scanning the messages table on SQLite.
 */
import { deleteOlderThan } from "../../lib/db/prune";
import { HOUR_MS, type RetentionJob } from "../../mixins/retention.mixin";

export const telegramUpdatesRetention: RetentionJob = {
	table: "telegram_updates",
	cutoff: (config, now) => new Date(now - config.telegramUpdateRetentionHours * HOUR_MS),
	prune: (db, cutoff, options) => deleteOlderThan(db, { table: "telegram_updates", key: "id", time: "received_at" }, cutoff, options),
};
