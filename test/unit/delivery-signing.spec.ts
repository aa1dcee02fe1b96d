/**
 * Signing a delivery (services/delivery/signing.ts), checked the way a receiver would: Standard
 * Webhooks with the standardwebhooks package's Webhook.verify (not our own code), both secrets
 * during a rotation, and the older `X-Webhook-Signature: sha256=...` recomputed here with node:crypto.
 */
import { createHmac } from "node:crypto";
import { Webhook, WebhookVerificationError } from "standardwebhooks";
import { newWebhookSecret, SECRET_PREFIX, signDelivery, type SignedHeaders } from "../../services/delivery/signing";

const body = JSON.stringify({ event_id: "evt_42", event: "new_message", seq: 42, bot_id: 1, chat_id: 7, message: { id: 3, text: "héllo ✓" }, timestamp: "2024-05-01T10:00:00.000Z" });

function standardHeaders(headers: SignedHeaders): Record<string, string> {
	return { "webhook-id": headers["webhook-id"], "webhook-timestamp": headers["webhook-timestamp"], "webhook-signature": headers["webhook-signature"] };
}

const hexHmac = (key: string, text: string) => createHmac("sha256", key).update(text).digest("hex");

describe("newWebhookSecret", () => {
	it("is whsec_ and the base64 of 32 random bytes, new every time", () => {
		const secrets = Array.from({ length: 20 }, () => newWebhookSecret());
		for (const secret of secrets) {
			expect(secret.startsWith(SECRET_PREFIX)).toBe(true);
			expect(SECRET_PREFIX).toBe("whsec_");
			expect(Buffer.from(secret.slice(SECRET_PREFIX.length), "base64")).toHaveLength(32);
			expect(secret.slice(SECRET_PREFIX.length)).toMatch(/^[A-Za-z0-9+/]+=*$/);
		}
		expect(new Set(secrets).size).toBe(secrets.length);
	});

	it("is a key the standardwebhooks package accepts", () => {
		expect(() => new Webhook(newWebhookSecret())).not.toThrow();
	});
});

describe("signDelivery with one secret", () => {
	const secret = newWebhookSecret();
	const at = new Date();
	const headers = signDelivery({ current: secret, previous: null }, "evt_42", at, body);

	it("carries webhook-id, the attempt's unix seconds and one v1 signature", () => {
		expect(headers["webhook-id"]).toBe("evt_42");
		expect(headers["webhook-timestamp"]).toBe(String(Math.floor(at.getTime() / 1000)));
		expect(headers["webhook-signature"]).toMatch(/^v1,[A-Za-z0-9+/]+=*$/);
		expect(headers["webhook-signature"].split(" ")).toHaveLength(1);
	});

	it("verifies with standardwebhooks' Webhook.verify, which returns the body", () => {
		expect(new Webhook(secret).verify(body, standardHeaders(headers))).toEqual(JSON.parse(body));
	});

	it("the signature is HMAC-SHA256 of '<id>.<timestamp>.<body>' keyed by the base64-decoded secret", () => {
		const key = Buffer.from(secret.slice(SECRET_PREFIX.length), "base64");
		const expected = createHmac("sha256", key).update(`evt_42.${headers["webhook-timestamp"]}.${body}`).digest("base64");
		expect(headers["webhook-signature"]).toBe(`v1,${expected}`);
	});

	it("does not verify with another secret, a changed body, id or timestamp", () => {
		expect(() => new Webhook(newWebhookSecret()).verify(body, standardHeaders(headers))).toThrow(WebhookVerificationError);
		expect(() => new Webhook(secret).verify(body.replace("42", "43"), standardHeaders(headers))).toThrow(WebhookVerificationError);
		expect(() => new Webhook(secret).verify(body, { ...standardHeaders(headers), "webhook-id": "evt_43" })).toThrow(WebhookVerificationError);
		expect(() => new Webhook(secret).verify(body, { ...standardHeaders(headers), "webhook-timestamp": String(Number(headers["webhook-timestamp"]) - 1) })).toThrow(WebhookVerificationError);
	});

	it("X-Webhook-Signature is sha256=<hex HMAC-SHA256 of the body keyed by the whole secret string>", () => {
		expect(headers["x-webhook-signature"]).toBe(`sha256=${hexHmac(secret, body)}`);
		// The whole string, whsec_ prefix included; not the decoded key.
		expect(headers["x-webhook-signature"]).not.toBe(`sha256=${createHmac("sha256", Buffer.from(secret.slice(6), "base64")).update(body).digest("hex")}`);
	});

	it("the same id on every retry, a new timestamp per attempt", () => {
		const later = new Date(at.getTime() + 5_000);
		const again = signDelivery({ current: secret, previous: null }, "evt_42", later, body);
		expect(again["webhook-id"]).toBe(headers["webhook-id"]);
		expect(Number(again["webhook-timestamp"]) - Number(headers["webhook-timestamp"])).toBeGreaterThanOrEqual(4);
		expect(new Webhook(secret).verify(body, standardHeaders(again))).toEqual(JSON.parse(body));
	});
});

describe("signDelivery during a rotation", () => {
	const previous = newWebhookSecret();
	const current = newWebhookSecret();
	const headers = signDelivery({ current, previous }, "evt_7", new Date(), body);

	it("carries two v1 signatures, space-separated", () => {
		const parts = headers["webhook-signature"].split(" ");
		expect(parts).toHaveLength(2);
		for (const part of parts) expect(part).toMatch(/^v1,[A-Za-z0-9+/]+=*$/);
		expect(parts[0]).not.toBe(parts[1]);
	});

	it("verifies with the new secret AND with the old one (standardwebhooks)", () => {
		expect(new Webhook(current).verify(body, standardHeaders(headers))).toEqual(JSON.parse(body));
		expect(new Webhook(previous).verify(body, standardHeaders(headers))).toEqual(JSON.parse(body));
	});

	it("does not verify with a third secret", () => {
		expect(() => new Webhook(newWebhookSecret()).verify(body, standardHeaders(headers))).toThrow(WebhookVerificationError);
	});

	it("X-Webhook-Signature uses the new secret only", () => {
		expect(headers["x-webhook-signature"]).toBe(`sha256=${hexHmac(current, body)}`);
		expect(headers["x-webhook-signature"]).not.toBe(`sha256=${hexHmac(previous, body)}`);
	});
});
