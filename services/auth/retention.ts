/** Retention of what auth records per login: the security log and spent or expired refresh tokens. */
import { deleteOlderThan } from "../../lib/db/prune";
import { DAY_MS, daysBefore, type RetentionJob } from "../../mixins/retention.mixin";

/** Failed logins, lockouts, refresh token reuse: kept SECURITY_EVENT_RETENTION_DAYS (0: for ever). */
export const securityEventsRetention: RetentionJob = {
	table: "security_events",
	cutoff: (config, now) => daysBefore(now, config.securityEventRetentionDays),
	prune: (db, cutoff, options) => deleteOlderThan(db, { table: "security_events", key: "id", time: "created_at" }, cutoff, options),
};

/**
 * A refresh token's row is read only when the token is presented (refresh, logout), and an expired
 * token is refused by its signature check (verifyToken: its exp is at most the row's expires_at)
 * before the row is looked up. So reuse detection (a spent token presented again revokes its whole
 * family) needs a spent row exactly as long as its token could still be presented: until it
 * expires. Later tokens of the family expire later, so their rows outlive the older ones and the
 * family can still be revoked. The grace covers nodes whose clocks run behind the pruning node's.
 */
export const REFRESH_TOKEN_GRACE_MS = DAY_MS;

export const refreshTokensRetention: RetentionJob = {
	table: "refresh_tokens",
	cutoff: (_config, now) => new Date(now - REFRESH_TOKEN_GRACE_MS),
	prune: (db, cutoff, options) => deleteOlderThan(db, { table: "refresh_tokens", key: "id", time: "expires_at" }, cutoff, options),
};
