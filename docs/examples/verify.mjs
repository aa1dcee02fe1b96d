// A webhook receiver for the Telegram Bot Gateway that checks every delivery's signature
// (docs/webhooks.md). Run it with the secret POST /api/v1/webhooks returned:
//
//   npm install standardwebhooks      # already a dependency of the gateway itself
//   WEBHOOK_SECRET=whsec_... PORT=8080 node docs/examples/verify.mjs
//
// It answers 204 to a delivery whose signature holds (and to a repeat of one it has seen), 401 to
// one that does not, and prints each event. CHECK=legacy checks only X-Webhook-Signature instead.
//
// Trying it with a gateway on the same machine: start the gateway with WEBHOOK_ALLOW_PRIVATE=true,
// or creating a webhook for "url": "http://127.0.0.1:8080/" (a loopback or private address) is
// refused with 400. Leave that setting off in production.
import { createHmac, timingSafeEqual } from "node:crypto";
import { createServer } from "node:http";
import { pathToFileURL } from "node:url";
import { Webhook, WebhookVerificationError } from "standardwebhooks";

/**
 * Standard Webhooks: HMAC-SHA256 over "<webhook-id>.<webhook-timestamp>.<raw body>", keyed by the
 * base64-decoded part of the whsec_ secret. The library also refuses a timestamp more than five
 * minutes away (replayed requests) and accepts any of the space-separated signatures (rotation).
 * Returns the parsed body; throws WebhookVerificationError.
 */
export function verifyStandardWebhook(secret, headers, rawBody) {
	return new Webhook(secret).verify(rawBody, {
		"webhook-id": headers["webhook-id"],
		"webhook-timestamp": headers["webhook-timestamp"],
		"webhook-signature": headers["webhook-signature"],
	});
}

/**
 * The older header, with node:crypto alone: X-Webhook-Signature: sha256=<hex HMAC-SHA256 of the raw
 * body, keyed by the whole secret string, "whsec_" included>. It carries no timestamp, so it does
 * not protect against a replayed request; prefer the Standard Webhooks headers.
 */
export function verifyLegacySignature(secret, header, rawBody) {
	const expected = Buffer.from(`sha256=${createHmac("sha256", secret).update(rawBody).digest("hex")}`);
	const given = Buffer.from(String(header ?? ""));
	return given.length === expected.length && timingSafeEqual(given, expected);
}

function readBody(req) {
	return new Promise((resolve, reject) => {
		const chunks = [];
		req.on("data", (chunk) => chunks.push(chunk));
		req.on("end", () => resolve(Buffer.concat(chunks).toString("utf8")));
		req.on("error", reject);
	});
}

/** A receiver: verifies, de-duplicates on webhook-id (the same on every retry), then handles. */
export function createReceiver({ secret, check = "standard", onEvent = () => {} }) {
	const seen = new Set();
	return createServer(async (req, res) => {
		if (req.method !== "POST") return res.writeHead(405).end();
		// Verify the bytes as they arrived: parsing and re-serialising the JSON would change them.
		const rawBody = await readBody(req);
		let event;
		try {
			if (check === "legacy") {
				if (!verifyLegacySignature(secret, req.headers["x-webhook-signature"], rawBody)) throw new WebhookVerificationError("No matching signature found");
				event = JSON.parse(rawBody);
			} else {
				event = verifyStandardWebhook(secret, req.headers, rawBody);
			}
		} catch (err) {
			res.writeHead(401, { "content-type": "text/plain" }).end(`signature check failed: ${err.message}`);
			return;
		}
		const id = req.headers["webhook-id"];
		if (!seen.has(id)) {
			seen.add(id);
			if (seen.size > 10_000) seen.delete(seen.values().next().value);
			onEvent(event, req.headers);
		}
		res.writeHead(204).end();
	});
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
	const secret = process.env.WEBHOOK_SECRET;
	if (!secret?.startsWith("whsec_")) {
		console.error("Set WEBHOOK_SECRET to the whsec_... secret of the webhook");
		process.exit(1);
	}
	const server = createReceiver({
		secret,
		check: process.env.CHECK === "legacy" ? "legacy" : "standard",
		onEvent: (event) => console.log(JSON.stringify({ event: event.event, event_id: event.event_id, seq: event.seq, chat_id: event.chat_id })),
	});
	server.listen(Number(process.env.PORT ?? 8080), process.env.HOST ?? "127.0.0.1", () => {
		console.log(`listening on http://${process.env.HOST ?? "127.0.0.1"}:${server.address().port}`);
	});
}
