/**
 * Plain HTTP helpers of the REST gateway: request ids, the body-type guard, JSON parsing without
 * prototype keys (lib/json), client addresses, and writing the API's error shape.
 */
import bodyParser from "body-parser";
import type { IncomingMessage, Server, ServerResponse } from "node:http";
import type { Duplex } from "node:stream";
import { fail, GatewayError, toApiError, type ApiError } from "../../lib/errors";
import { MAX_JSON_DEPTH, sanitizeJson } from "../../lib/json";
import { requestIdFor } from "../../lib/request-id";
import { CREDENTIAL_QUERY_NAMES } from "./credentials";


/**
 * A request's path as traces may show it: no query (`?api_key=` and `?token=` carry credentials) and
 * no Telegram webhook path (with the bot's secret_token, it is what lets updates in).
 */
export function traceablePath(url: string | undefined): string {
	const path = (url ?? "").split("?")[0]!;
	return path.replace(/\/webhook\/[^/]+/, "/webhook/:path");
}

export { requestIdFor };

export const JSON_TYPE = "application/json";
export const FORM_TYPE = "application/x-www-form-urlencoded";

export function hasBody(req: IncomingMessage): boolean {
	const length = req.headers["content-length"];
	if (length !== undefined) return Number(length) > 0;
	return req.headers["transfer-encoding"] !== undefined;
}

type Next = (err?: unknown) => void;
type Parser = (req: IncomingMessage, res: ServerResponse, next: Next) => void;

/**
 * One middleware for request bodies: no body, nothing to do (most GETs pass straight through);
 * JSON (and form bodies where `form` is allowed) are parsed by body-parser with the 1 MB limit and
 * without prototype keys; any other Content-Type is a 415, where body-parser alone would skip the
 * body silently and turn it into a confusing validation error. A JSON body is an object of at most
 * `maxFields` fields: an array or a wide object within the 1 MB cost a quarter of a second to merge
 * into the params (before authentication) and came back as one validation error per element.
 * With `unverified`, a request whose credential was not verified before its body (checkBeforeBody
 * in ./authentication.ts leaves no $principal) is held to that smaller limit.
 */
export function bodyReader(options: { limit: string; form: boolean; maxFields: number; unverified?: { limit: string; message: string } }) {
	const parsersUpTo = (limit: string) => {
		// A Map, not an object: the Content-Type is the client's, and `parsers["__proto__"]` would be truthy.
		const parsers = new Map<string, Parser>([[JSON_TYPE, bodyParser.json({ limit, strict: true }) as Parser]]);
		if (options.form) parsers.set(FORM_TYPE, bodyParser.urlencoded({ limit, extended: false, parameterLimit: 200 }) as Parser);
		return parsers;
	};
	const verifiedParsers = parsersUpTo(options.limit);
	const unverifiedParsers = options.unverified ? parsersUpTo(options.unverified.limit) : verifiedParsers;
	const accepted = [...verifiedParsers.keys()];
	return function readBody(req: IncomingMessage & { body?: unknown; $principal?: unknown }, res: ServerResponse, next: Next): void {
		if (!hasBody(req)) {
			req.body = {};
			return next();
		}
		const type = (req.headers["content-type"] ?? "").split(";")[0]!.trim().toLowerCase();
		const verified = req.$principal !== undefined;
		const parse = (verified ? verifiedParsers : unverifiedParsers).get(type);
		if (!parse) {
			return next(
				new GatewayError("UNSUPPORTED_MEDIA_TYPE", `Content-Type must be ${accepted.join(" or ")}`, { content_type: type || null }),
			);
		}
		parse(req, res, (err?: unknown) => {
			if (err && !verified && options.unverified && (err as { type?: unknown }).type === "entity.too.large") {
				return next(new GatewayError("PAYLOAD_TOO_LARGE", options.unverified.message, { limit: (err as { limit?: unknown }).limit }));
			}
			if (err) return next(compressionError(err, req) ?? notAnObject(err) ?? tooLarge(err) ?? err);
			const body = req.body;
			if (body === null || typeof body !== "object" || Array.isArray(body)) {
				return next(new GatewayError("BAD_REQUEST", "The body must be a JSON object"));
			}
			if (Object.keys(body).length > options.maxFields) {
				return next(new GatewayError("BAD_REQUEST", `The body has more than ${options.maxFields} fields`, { limit: options.maxFields }));
			}
			if (!sanitizeJson(body, MAX_JSON_DEPTH)) {
				return next(new GatewayError("BAD_REQUEST", `JSON body is nested deeper than ${MAX_JSON_DEPTH} levels`, { limit: MAX_JSON_DEPTH }));
			}
			next();
		});
	};
}

/** body-parser's strict JSON refuses a body that is valid JSON but no object or array ("x", null, 5) as malformed: say what it is. */
function notAnObject(err: unknown): GatewayError | undefined {
	const { type, body } = err as { type?: unknown; body?: unknown };
	if (type !== "entity.parse.failed" || typeof body !== "string") return undefined;
	try {
		JSON.parse(body);
	} catch {
		return undefined;
	}
	return new GatewayError("BAD_REQUEST", "The body must be a JSON object");
}

/** Over the limit of a verified request, with the limit named as the unverified one is. */
function tooLarge(err: unknown): GatewayError | undefined {
	const { type, limit } = err as { type?: unknown; limit?: unknown };
	if (type !== "entity.too.large") return undefined;
	return new GatewayError("PAYLOAD_TOO_LARGE", `The body is larger than ${typeof limit === "number" ? `${limit} bytes` : "the limit"}`, typeof limit === "number" ? { limit } : {});
}

/**
 * After the body reader: a parameter given both in the query and in the body is refused, naming it.
 * moleculer-web merges the query over the body, so `POST /apikeys?name=a` with `{"name": "b"}`
 * created a key named "a" while the client's body said "b".
 */
export function refuseParamsGivenTwice(req: IncomingMessage & { query?: Record<string, unknown>; body?: unknown }, _res: ServerResponse, next: Next): void {
	const body = req.body;
	if (!req.query || body === null || typeof body !== "object") return next();
	const twice = Object.keys(req.query).filter((name) => !CREDENTIAL_QUERY_NAMES.has(name) && Object.hasOwn(body, name));
	if (twice.length === 0) return next();
	next(fail.validation(twice.map((field) => ({ field, message: `The '${field}' field is given both in the query and in the body; give it once.` }))));
}

/**
 * A gzip or deflate body that does not decompress: zlib's error carries a string code ("Z_DATA_ERROR"),
 * which moleculer-web would take for the status and answer 500.
 */
function compressionError(err: unknown, req: IncomingMessage): GatewayError | undefined {
	const code = (err as { code?: unknown }).code;
	if (typeof code !== "string" || !code.startsWith("Z_")) return undefined;
	return new GatewayError("BAD_REQUEST", `The body is not valid ${String(req.headers["content-encoding"] ?? "compressed")} data`);
}

/** The peer's address; X-Forwarded-For only counts when the peer is one of TRUST_PROXY. */
export function clientAddress(req: IncomingMessage, trustedProxies: string[]): string {
	const peer = normaliseAddress(req.socket.remoteAddress ?? "");
	if (trustedProxies.length === 0 || !trustedProxies.includes(peer)) return peer;
	const forwarded = req.headers["x-forwarded-for"];
	const chain = (Array.isArray(forwarded) ? forwarded.join(",") : (forwarded ?? ""))
		.split(",")
		.map((s) => normaliseAddress(s.trim()))
		.filter(Boolean);
	// Walk from the nearest hop back; the first address that is not a trusted proxy is the client.
	for (let i = chain.length - 1; i >= 0; i--) {
		if (!trustedProxies.includes(chain[i]!)) return chain[i]!;
	}
	return chain[0] ?? peer;
}

function normaliseAddress(address: string): string {
	return address.startsWith("::ffff:") ? address.slice(7) : address;
}

export function writeApiError(res: ServerResponse, apiError: ApiError): void {
	if (res.headersSent) {
		res.end();
		return;
	}
	res.setHeader("Content-Type", "application/json; charset=utf-8");
	if (apiError.retryAfter !== undefined) res.setHeader("Retry-After", String(Math.max(1, Math.ceil(apiError.retryAfter))));
	res.writeHead(apiError.status);
	res.end(JSON.stringify(apiError.body));
}

export function sendError(res: ServerResponse, err: unknown): ApiError {
	const apiError = toApiError(err);
	writeApiError(res, apiError);
	return apiError;
}

/** What Node's HTTP parser refuses, before any route sees the request: status and why. */
function parserRefusal(code: string | undefined, requestTimeoutMs: number): { status: number; reason: string; message: string } {
	if (code === "HPE_HEADER_OVERFLOW") return { status: 431, reason: "Request Header Fields Too Large", message: "The request's headers are larger than 16 KB." };
	if (code === "ERR_HTTP_REQUEST_TIMEOUT") return { status: 408, reason: "Request Timeout", message: `The request was not received in full within ${requestTimeoutMs / 1000} s.` };
	return { status: 400, reason: "Bad Request", message: "The request is not valid HTTP/1.1." };
}

/**
 * Requests Node's parser refuses (a broken request line, headers past 16 KB, a request trickled in
 * past the request timeout) are answered in the API's error shape with an X-Request-Id, where Node
 * alone writes a bare status line. Nothing else is read from the request: it is not HTTP we understand.
 */
export function answerParserErrors(server: Server, requestTimeoutMs: number): void {
	server.on("clientError", (err: NodeJS.ErrnoException, socket: Duplex) => {
		const answering = (socket as Duplex & { _httpMessage?: ServerResponse })._httpMessage;
		// A reset connection cannot be answered, and one whose response has begun must not get a second.
		if (err.code === "ECONNRESET" || !socket.writable || answering?.headersSent) {
			socket.destroy();
			return;
		}
		const { status, reason, message } = parserRefusal(err.code, requestTimeoutMs);
		const body = JSON.stringify({ error: { code: "BAD_REQUEST", message } });
		socket.end(
			`HTTP/1.1 ${status} ${reason}\r\nContent-Type: application/json; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(body)}\r\n` +
				`X-Request-Id: ${requestIdFor(undefined)}\r\nConnection: close\r\n\r\n${body}`,
		);
	});
}
