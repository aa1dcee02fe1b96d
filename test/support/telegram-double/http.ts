/** HTTP plumbing of the double: Bot API errors, request parameters (query, JSON, form), answers. */
import type { IncomingMessage, ServerResponse } from "node:http";
import type { Params } from "./types";

/** A Bot API failure: answered as `{ok: false, error_code, description, parameters?}`. */
export class ApiError extends Error {
	constructor(
		readonly code: number,
		readonly description: string,
		readonly retryAfter?: number,
		/** ResponseParameters besides retry_after (migrate_to_chat_id). */
		readonly parameters?: Record<string, unknown>,
	) {
		super(description);
	}
}

export const badRequest = (what: string): ApiError => new ApiError(400, `Bad Request: ${what}`);
export const conflict = (what: string): ApiError => new ApiError(409, `Conflict: ${what}`);
export const tooManyRequests = (retryAfter: number): ApiError => new ApiError(429, `Too Many Requests: retry after ${retryAfter}`, retryAfter);
/** What Telegram answers a send to a group that became a supergroup. */
export const upgradedToSupergroup = (migrateTo: number): ApiError =>
	new ApiError(400, "Bad Request: group chat was upgraded to a supergroup chat", undefined, { migrate_to_chat_id: migrateTo });

/** Form and query values that look like JSON arrays or objects are parsed, as Telegram does (allowed_updates, reply_markup). */
function formValue(value: string): unknown {
	if (!/^\s*[[{]/.test(value)) return value;
	try {
		return JSON.parse(value) as unknown;
	} catch {
		return value;
	}
}

/** Reads the body up to `limit` bytes; past it the rest is drained and discarded, then 413. */
function readBody(req: IncomingMessage, limit: number): Promise<Buffer> {
	return new Promise((resolve, reject) => {
		const chunks: Buffer[] = [];
		let size = 0;
		req.on("data", (chunk: Buffer) => {
			size += chunk.length;
			if (size <= limit) chunks.push(chunk);
		});
		req.once("end", () => (size > limit ? reject(new ApiError(413, "Request Entity Too Large")) : resolve(Buffer.concat(chunks))));
		req.once("error", reject);
		req.once("close", () => reject(new ApiError(400, "Bad Request: the request body was cut off"))); // no-op once ended
	});
}

/** The call's parameters: the query string, overridden by a JSON or urlencoded body. */
export async function readParams(req: IncomingMessage, url: URL, limit: number): Promise<Params> {
	const params: Params = {};
	for (const [key, value] of url.searchParams) params[key] = formValue(value);
	const body = await readBody(req, limit);
	if (body.length === 0) return params;
	const type = (req.headers["content-type"] ?? "").split(";")[0]!.trim().toLowerCase();
	if (type === "application/json") {
		let parsed: unknown;
		try {
			parsed = JSON.parse(body.toString("utf8"));
		} catch {
			throw badRequest("can't parse JSON object");
		}
		if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) throw badRequest("JSON object expected");
		Object.assign(params, parsed);
	} else if (type === "application/x-www-form-urlencoded") {
		for (const [key, value] of new URLSearchParams(body.toString("utf8"))) params[key] = formValue(value);
	} else if (type === "multipart/form-data") {
		throw badRequest("multipart/form-data (file upload) is not supported by the Telegram double; pass a file_id or an URL");
	}
	return params;
}

export function sendJson(res: ServerResponse, status: number, body: unknown): void {
	if (res.headersSent || res.destroyed) return;
	const text = JSON.stringify(body);
	res.writeHead(status, { "content-type": "application/json", "content-length": Buffer.byteLength(text) });
	res.end(text);
}

export function sendError(res: ServerResponse, error: ApiError): void {
	sendJson(res, error.code, {
		ok: false,
		error_code: error.code,
		description: error.description,
		...(error.retryAfter !== undefined || error.parameters ? { parameters: { ...error.parameters, ...(error.retryAfter !== undefined ? { retry_after: error.retryAfter } : {}) } } : {}),
	});
}

const NGINX_TITLES: Record<number, string> = { 502: "502 Bad Gateway", 503: "503 Service Temporarily Unavailable", 504: "504 Gateway Time-out" };

/** What api.telegram.org's nginx answers when the Bot API behind it is down: HTML, not JSON. */
export function sendNginxError(res: ServerResponse, status: 502 | 503 | 504): void {
	if (res.headersSent || res.destroyed) return;
	const title = NGINX_TITLES[status];
	const html = `<html>\r\n<head><title>${title}</title></head>\r\n<body>\r\n<center><h1>${title}</h1></center>\r\n<hr><center>nginx/1.18.0</center>\r\n</body>\r\n</html>\r\n`;
	res.writeHead(status, { "content-type": "text/html", "content-length": Buffer.byteLength(html) });
	res.end(html);
}

/** An Integer parameter (JSON number or decimal string); anything else counts as absent, as Telegram does. */
export function intParam(params: Params, name: string): number | undefined {
	const value = params[name];
	if (typeof value === "number" && Number.isInteger(value)) return value;
	if (typeof value === "string" && /^-?\d+$/.test(value.trim())) return Number(value);
	return undefined;
}

export function boolParam(params: Params, name: string): boolean {
	const value = params[name];
	return value === true || value === 1 || value === "true" || value === "1" || value === "True";
}

export function stringParam(params: Params, name: string): string | undefined {
	const value = params[name];
	if (typeof value === "string") return value;
	if (typeof value === "number") return String(value);
	return undefined;
}

export function stringListParam(params: Params, name: string): string[] | undefined {
	const value = params[name];
	if (value === undefined || value === null || value === "") return undefined;
	if (!Array.isArray(value) || !value.every((item) => typeof item === "string")) throw badRequest(`can't parse ${name.replace("_", " ")} JSON array`);
	return value as string[];
}
