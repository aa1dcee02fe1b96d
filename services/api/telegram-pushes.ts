/**
 * Telegram pushes leave the api node in batches: every push that arrives while earlier batches are
 * with ingest goes in the next call, so under load one call (one transporter round trip, one pass
 * through the middlewares on each side) carries dozens of updates, and at low load a push goes at
 * once on its own. ingest answers each push on its own. An api node that runs ingest itself (the
 * embedded mode) calls it for every push at once. Before a push's body is read, its path and secret
 * are verified with ingest (verify(), checkPushBeforeBody).
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import type { ServiceBroker } from "moleculer";
import { Batcher } from "../../lib/batcher";
import { LoadingCache } from "../../lib/loading-cache";
import { fail, GatewayError, toApiError } from "../../lib/errors";
import { metricsOf, type RoutedRequest } from "../../lib/metrics";
import { isActionReachable } from "../../lib/reachable";
import { refuseOverloaded } from "../ingest/overload";
import { WEBHOOK_PATH, type PushOutcome, type TelegramPush } from "../ingest/types";

/**
 * Calls to ingest in flight at once from one api node. Ingest's transactions queue for the event
 * log's sequence row anyway, so more calls only make smaller batches: with 2 workers, 2 calls stored
 * ~1,500 updates/s, 4 calls ~1,350, 8 calls ~1,270 (test/bench/ingest.bench.ts, cluster).
 */
const CALLS_IN_FLIGHT = 2;
const PUSHES_PER_CALL = 128;
/** Body bytes per call: well inside NATS's 1 MB message limit (a push alone may weigh up to 1 MB). */
const BYTES_PER_CALL = 256 * 1024;
const CALL_TIMEOUT_MS = 15_000;
/**
 * Pushes waiting for a call at most. They are not yet checked against their bot's secret (ingest
 * does that), so anyone can add to them: past either cap a push is answered 503 (Telegram redelivers).
 */
export const MAX_QUEUED_PUSHES = { items: 4_096, bytes: 64 * 1024 * 1024 };

/** A push with the size of its body as received (Content-Length), for the bytes-per-call cap. */
export interface SizedPush extends TelegramPush {
	bytes: number;
}

export interface TelegramPushes {
	/**
	 * Refuses (404, 401) a push whose path is no active bot's or whose secret is not that bot's,
	 * before its body is read: otherwise anyone could have the node read and parse 1 MB bodies and
	 * fill the queue above. What ingest said yes to is kept for a while (ingest checks every push
	 * again when it takes it, so a bot deleted meanwhile loses nothing but this shortcut).
	 */
	verify(path: string, secret: string | undefined): Promise<void>;
	/** Bots changed: what verify() kept goes. */
	forget(): void;
	/** Sends the push to ingest with the pushes that travel with it, and answers with its outcome. */
	submit(push: SizedPush): Promise<PushOutcome>;
}

/** How long a path and secret that ingest took are taken without asking again. */
const VERIFIED_TTL_MS = 30_000;

const wire = ({ path, secret, body }: TelegramPush): TelegramPush => (secret === undefined ? { path, body } : { path, secret, body });

export function telegramPushes(broker: ServiceBroker, maxQueued = MAX_QUEUED_PUSHES): TelegramPushes {
	const rejected = metricsOf(broker).updatesRejected;
	const call = (pushes: TelegramPush[]) =>
		broker.call<PushOutcome[], { pushes: TelegramPush[] }>("ingest.receiveBatch", { pushes }, { timeout: CALL_TIMEOUT_MS, retries: 0 });
	const batcher = new Batcher<SizedPush, PushOutcome>({
		write: (batch) => call(batch.map(wire)),
		maxBatch: PUSHES_PER_CALL,
		concurrency: CALLS_IN_FLIGHT,
		maxWeight: BYTES_PER_CALL,
		weight: (push) => push.bytes,
		// The call failed as a whole (no ingest node, a timeout): every push in it gets that answer.
		isUnavailable: () => true,
		maxQueued: { items: maxQueued.items, weight: maxQueued.bytes, full: refuseOverloaded(broker, "Ingest") },
	});
	const verified = new LoadingCache<string, true>({ max: 10_000, ttlMs: VERIFIED_TTL_MS });
	const refuseUnknown = () => {
		rejected.inc({ reason: "unknown_webhook" });
		return fail.notFound("Webhook");
	};
	return {
		verify: async (path, secret) => {
			if (!WEBHOOK_PATH.test(path)) throw refuseUnknown();
			// Ingest nodes of an earlier version (a rolling upgrade) have no checkPush: their pushes are read first, as before.
			if (!isActionReachable(broker, "ingest.checkPush") && isActionReachable(broker, "ingest.receiveBatch")) return;
			await verified.get(`${path}:${secret ?? ""}`, async () => {
				await broker.call("ingest.checkPush", secret === undefined ? { path } : { path, secret }, { timeout: CALL_TIMEOUT_MS, retries: 0 });
				return true as const;
			});
		},
		forget: () => verified.clear(),
		// With ingest on this node (Moleculer calls it here) a call costs no round trip, and ingest
		// groups pushes into transactions itself: holding them back here would only idle its writer.
		submit: async (push) => {
			// Not a path any bot has: answered here, so made-up paths take no room in the batches.
			if (!WEBHOOK_PATH.test(push.path)) throw refuseUnknown();
			return broker.getLocalService("ingest") ? (await call([wire(push)]))[0]! : batcher.submit(push);
		},
	};
}

/** Longer than any secret of ours is simply wrong (taken as none: 401). */
const MAX_SECRET_LENGTH = 256;

/** The secret_token Telegram presents with a push, when it is one that could be ours. */
export function pushSecret(req: IncomingMessage): string | undefined {
	const secret = req.headers["x-telegram-bot-api-secret-token"];
	return typeof secret === "string" && secret.length <= MAX_SECRET_LENGTH ? secret : undefined;
}

/** The route middleware of Telegram's receiver, before its body reader: verify() on the path and secret. */
export function checkPushBeforeBody(this: { telegramPushes: TelegramPushes }, incoming: IncomingMessage, _res: ServerResponse, next: (err?: unknown) => void): void {
	const req = incoming as RoutedRequest & { parsedUrl?: string };
	// The route's one alias: its template labels the metrics of a push refused here, before moleculer-web names it.
	req.$routeTemplate = `${req.$route?.path ?? ""}/webhook/:path`;
	const path = /\/webhook\/([^/?]*)\/?$/.exec(req.parsedUrl ?? "")?.[1] ?? "";
	this.telegramPushes.verify(path, pushSecret(req)).then(() => next(), next);
}

type Middleware = (req: IncomingMessage, res: ServerResponse, next: (err?: unknown) => void) => void;

/**
 * The receiver's body reader, counting what it refuses in tgw_telegram_updates_rejected_total as
 * ingest counts its own refusals: a body too large, of another type, or not an update's JSON.
 */
export function countedPushBodyReader(reader: Middleware) {
	return function readPushBody(this: { broker: ServiceBroker }, req: IncomingMessage, res: ServerResponse, next: (err?: unknown) => void): void {
		reader(req, res, (err?: unknown) => {
			// A sender that hung up before its body was in refused nothing: it is not a malformed update.
			if (err && (err as { type?: unknown }).type !== "request.aborted") {
				const { status } = toApiError(err);
				metricsOf(this.broker).updatesRejected.inc({ reason: status === 413 ? "too_large" : status === 415 ? "unsupported_media_type" : "malformed" });
			}
			next(err);
		});
	};
}

/** The answer of one push: Telegram's 2xx body, or the error ingest refused it with. */
export function answerOf(outcome: PushOutcome): { ok: true; duplicate?: true } {
	if ("error" in outcome) throw new GatewayError(outcome.error.code, outcome.error.message, outcome.error.details);
	return outcome;
}
