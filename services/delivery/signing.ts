/**
 * Signing a delivery. Standard Webhooks (`webhook-id`, `webhook-timestamp`, `webhook-signature`)
 * with the standardwebhooks library: HMAC-SHA256 of "<id>.<timestamp>.<body>", keyed by the
 * base64-decoded part of the `whsec_` secret; during a rotation both secrets sign (space-separated).
 * For older receivers, `X-Webhook-Signature: sha256=<hex HMAC of the body keyed by the secret string>`.
 */
import { createHmac, randomBytes } from "node:crypto";
import { Webhook } from "standardwebhooks";

export const SECRET_PREFIX = "whsec_";

export function newWebhookSecret(): string {
	return SECRET_PREFIX + randomBytes(32).toString("base64");
}

export interface SigningSecrets {
	current: string;
	/** The secret before the last rotation, while it still signs (24 h). */
	previous: string | null;
}

export interface SignedHeaders {
	"webhook-id": string;
	"webhook-timestamp": string;
	"webhook-signature": string;
	"x-webhook-signature": string;
}

export function signDelivery(secrets: SigningSecrets, id: string, at: Date, body: string): SignedHeaders {
	const signatures = [secrets.current, ...(secrets.previous ? [secrets.previous] : [])].map((secret) => new Webhook(secret).sign(id, at, body));
	return {
		"webhook-id": id,
		"webhook-timestamp": String(Math.floor(at.getTime() / 1000)),
		"webhook-signature": signatures.join(" "),
		"x-webhook-signature": `sha256=${createHmac("sha256", secrets.current).update(body).digest("hex")}`,
	};
}
