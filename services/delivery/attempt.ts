/**
 * One HTTP attempt of a delivery: a signed JSON POST with undici, no redirects followed, 10 s for
 * the whole answer, at most 64 KB of the response read (1 KB of it kept for the log), and the
 * address checked at connection time (url-safety.ts).
 */
import { isIP } from "node:net";
import { Agent, request } from "undici";
import { isPrivateAddress, safeLookup } from "./url-safety";
import { signDelivery, type SigningSecrets } from "./signing";
import { parseRetryAfter } from "./schedule";

export const ATTEMPT_TIMEOUT_MS = 10_000;
const MAX_RESPONSE_READ = 64 * 1024;
const EXCERPT_BYTES = 1024;

export interface AttemptResult {
	statusCode: number | null;
	error: string | null;
	excerpt: string | null;
	durationMs: number;
	retryAfterMs: number | null;
	startedAt: Date;
}

export interface DeliveryMessage {
	/** webhook-id: the same on every retry of an event (`evt_<seq>`), receivers de-duplicate on it. */
	id: string;
	event: string;
	/** X-Webhook-Delivery: this delivery's id. */
	deliveryId: string;
	body: string;
}

export function createOutboundAgent(allowPrivate: boolean): Agent {
	return new Agent({
		connections: 64,
		keepAliveTimeout: 10_000,
		connect: { timeout: 5_000, lookup: safeLookup(allowPrivate) as never },
	});
}

function describe(err: unknown): string {
	const code = (err as { code?: string }).code ?? (err as { cause?: { code?: string } }).cause?.code;
	const name = (err as Error).name;
	if (name === "TimeoutError" || name === "AbortError" || code === "UND_ERR_HEADERS_TIMEOUT" || code === "UND_ERR_BODY_TIMEOUT") {
		return `no answer within ${ATTEMPT_TIMEOUT_MS / 1000} s`;
	}
	if (code === "EADDRNOTALLOWED") return "the URL's address is private, loopback or link-local: refused";
	return `connection failed: ${code ?? name}`;
}

export async function attemptDelivery(
	agent: Agent,
	url: string,
	secrets: SigningSecrets,
	message: DeliveryMessage,
	allowPrivate: boolean,
): Promise<AttemptResult> {
	const startedAt = new Date();
	const started = performance.now();
	const done = (fields: Partial<AttemptResult>): AttemptResult => ({
		statusCode: null,
		error: null,
		excerpt: null,
		retryAfterMs: null,
		...fields,
		startedAt,
		durationMs: Math.round(performance.now() - started),
	});
	const host = new URL(url).hostname.replace(/^\[|\]$/g, "");
	if (!allowPrivate && isIP(host) && isPrivateAddress(host)) return done({ error: "the URL's address is private, loopback or link-local: refused" });

	const headers = {
		"content-type": "application/json",
		"user-agent": "telegram-bot-gateway-webhooks/1",
		...signDelivery(secrets, message.id, startedAt, message.body),
		"x-webhook-event": message.event,
		"x-webhook-delivery": message.deliveryId,
	};
	try {
		const response = await request(url, {
			dispatcher: agent,
			method: "POST",
			headers,
			body: message.body,
			headersTimeout: ATTEMPT_TIMEOUT_MS,
			bodyTimeout: ATTEMPT_TIMEOUT_MS,
			signal: AbortSignal.timeout(ATTEMPT_TIMEOUT_MS),
		});
		let read = 0;
		const chunks: Buffer[] = [];
		// The status is the answer: a body that does not end within the attempt's time (a receiver that
		// answered 200 and then trickled) is cut, and the status stands, with a note in the log.
		let unfinished: string | null = null;
		try {
			for await (const chunk of response.body) {
				const buffer = chunk as Buffer;
				if (read < EXCERPT_BYTES) chunks.push(buffer.subarray(0, EXCERPT_BYTES - read));
				read += buffer.length;
				if (read >= MAX_RESPONSE_READ) {
					response.body.destroy();
					break;
				}
			}
		} catch (err) {
			response.body.destroy();
			const cause = describe(err);
			unfinished = cause.startsWith("no answer") ? `the response's body did not end within ${ATTEMPT_TIMEOUT_MS / 1000} s` : `the response's body was cut off (${cause})`;
		}
		const ok = response.statusCode >= 200 && response.statusCode < 300;
		const status = ok ? null : `HTTP ${response.statusCode}`;
		return done({
			statusCode: response.statusCode,
			error: status && unfinished ? `${status}; ${unfinished}` : (status ?? unfinished),
			excerpt: chunks.length > 0 ? Buffer.concat(chunks).toString("utf8") : null,
			retryAfterMs: parseRetryAfter(response.headers["retry-after"]),
		});
	} catch (err) {
		return done({ error: describe(err) });
	}
}
