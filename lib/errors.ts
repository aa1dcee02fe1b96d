/**
 * The error contract of API.md: `{"error": {"code", "message", "details"?}}` with a fixed status per
 * code. Services throw GatewayError; toApiError turns anything (ours, Moleculer's, moleculer-web's,
 * body-parser's, Sequelize's, even after a hop over the transporter) into that shape without ever
 * passing on a stack, a SQL fragment or a value the client sent.
 */
import { Errors } from "moleculer";

export const ERROR_STATUS = {
	VALIDATION_ERROR: 400,
	BAD_REQUEST: 400,
	UNAUTHORIZED: 401,
	FORBIDDEN: 403,
	NOT_FOUND: 404,
	CONFLICT: 409,
	PAYLOAD_TOO_LARGE: 413,
	UNSUPPORTED_MEDIA_TYPE: 415,
	RATE_LIMITED: 429,
	INTERNAL: 500,
	UNAVAILABLE: 503,
} as const;

export type ApiErrorCode = keyof typeof ERROR_STATUS;

export interface FieldProblem {
	field: string;
	message: string;
	type?: string;
}

export interface ApiErrorBody {
	error: { code: ApiErrorCode; message: string; details?: Record<string, unknown> };
}

export interface ApiError {
	status: number;
	body: ApiErrorBody;
	/** Seconds, for 429 and 503 answers that know when to come back. */
	retryAfter?: number;
}

/** Why a genuine credential is refused: see fail.credentialEnded. */
const CREDENTIAL_ENDINGS = ["expired", "revoked", "user_disabled"] as const;
export type CredentialEndedReason = (typeof CREDENTIAL_ENDINGS)[number];
export const CREDENTIAL_ENDED_REASONS: ReadonlySet<string> = new Set(CREDENTIAL_ENDINGS);

export class GatewayError extends Errors.MoleculerError {
	/**
	 * `endpointFailure`: the node's service itself failed (its database away), so Moleculer may retry
	 * the call elsewhere and its circuit breaker counts it. An answer about the request or its subject
	 * is not one, 503s included (a bot whose token Telegram refuses, a send Telegram did not take):
	 * another node would give it alike, and counted, one bot's failures opened the breaker on
	 * chats.send and refused every bot's sends for 10 s.
	 */
	constructor(code: ApiErrorCode, message: string, details?: Record<string, unknown>, options: { endpointFailure?: boolean } = {}) {
		super(message, ERROR_STATUS[code], code, details);
		this.name = "GatewayError";
		this.retryable = options.endpointFailure ?? false;
	}
}

/**
 * Moleculer's circuit breaker's check: whether a failed call says its endpoint is unwell. Moleculer's
 * own (timeouts, transport failures: a code of 500 or more, or retryable) do; a GatewayError (here,
 * or restored after a hop over the transporter, which keeps its name and `retryable`) only when it is
 * an endpoint failure. A plain Error (no code) does not, as before.
 */
export function isEndpointFailure(err: unknown): boolean {
	const e = err as { name?: unknown; code?: unknown; retryable?: unknown } | null | undefined;
	if (!e) return false;
	if (e.name === "GatewayError") return e.retryable === true;
	return (typeof e.code === "number" && e.code >= 500) || e.retryable === true;
}

export const fail = {
	validation: (fields: FieldProblem[]) =>
		new GatewayError("VALIDATION_ERROR", `Invalid ${fields.map((f) => f.field).join(", ")}`, { fields }),
	badRequest: (message: string, details?: Record<string, unknown>) => new GatewayError("BAD_REQUEST", message, details),
	unauthorized: (message = "Missing or invalid credentials") => new GatewayError("UNAUTHORIZED", message),
	/**
	 * A credential that verified (its holder was given it) but no longer admits: expired, revoked, or
	 * its user disabled. `details.reason` says which; it is not a guess (lib/credential-throttle.ts).
	 */
	credentialEnded: (message: string, reason: CredentialEndedReason) => new GatewayError("UNAUTHORIZED", message, { reason }),
	forbidden: (message = "Not allowed") => new GatewayError("FORBIDDEN", message),
	notFound: (what: string) => new GatewayError("NOT_FOUND", `${what} not found`),
	conflict: (message: string, details?: Record<string, unknown>) => new GatewayError("CONFLICT", message, details),
	rateLimited: (retryAfterSeconds: number) =>
		new GatewayError("RATE_LIMITED", "Too many requests", { retry_after: retryAfterSeconds }),
	unavailable: (what: string, retryAfterSeconds?: number) =>
		new GatewayError("UNAVAILABLE", `${what} is unavailable, try again later`, retryAfterSeconds === undefined ? undefined : { retry_after: retryAfterSeconds }),
};

const DEFAULT_MESSAGE: Record<ApiErrorCode, string> = {
	VALIDATION_ERROR: "Invalid request",
	BAD_REQUEST: "Bad request",
	UNAUTHORIZED: "Missing or invalid credentials",
	FORBIDDEN: "Not allowed",
	NOT_FOUND: "Not found",
	CONFLICT: "Conflict",
	PAYLOAD_TOO_LARGE: "Request body is larger than 1 MB",
	UNSUPPORTED_MEDIA_TYPE: "Content-Type must be application/json or application/x-www-form-urlencoded",
	RATE_LIMITED: "Too many requests",
	INTERNAL: "Internal server error",
	UNAVAILABLE: "Service temporarily unavailable, try again later",
};

type LooseError = {
	name?: string;
	message?: string;
	code?: unknown;
	type?: unknown;
	data?: unknown;
	status?: unknown;
	statusCode?: unknown;
};

/** Sequelize errors a client should retry: the database, not the request, is the problem. */
const DB_UNAVAILABLE = new Set([
	"SequelizeConnectionError",
	"SequelizeConnectionRefusedError",
	"SequelizeConnectionAcquireTimeoutError",
	"SequelizeConnectionTimedOutError",
	"SequelizeHostNotFoundError",
	"SequelizeHostNotReachableError",
	"SequelizeAccessDeniedError",
	"SequelizeInvalidConnectionError",
	"SequelizeTimeoutError",
	// lib/db/raw.ts: the hot path's driver errors that mean the database is away.
	"DatabaseUnavailableError",
]);

/**
 * Driver codes under an error Sequelize could not classify (it wraps a connection lost in the
 * middle of a statement, or a SQLite file it cannot write, as a plain DatabaseError) or, for lock
 * conflicts, on a raw driver error (lib/db/raw.ts): the database went away (the disk is full, the
 * file is locked or unreadable), or a deadlock ended the transaction. Sent again, the request can
 * succeed. lib/db/raw.ts wraps the same codes from its own statements.
 */
export const DB_LOST_CODES: ReadonlySet<string> = new Set([
	"PROTOCOL_CONNECTION_LOST",
	"PROTOCOL_SEQUENCE_TIMEOUT",
	"ECONNRESET",
	"ECONNREFUSED",
	"EPIPE",
	"ETIMEDOUT",
	"ER_SERVER_SHUTDOWN",
	"ER_CON_COUNT_ERROR",
	"SQLITE_BUSY",
	"SQLITE_LOCKED",
	"SQLITE_FULL",
	"SQLITE_IOERR",
	"SQLITE_READONLY",
	"SQLITE_CANTOPEN",
]);
/** ER_CHECKREAD: MariaDB with innodb_snapshot_isolation refuses a write based on a stale snapshot. */
const DB_CONFLICT_CODES = new Set(["ER_LOCK_DEADLOCK", "ER_LOCK_WAIT_TIMEOUT", "ER_CHECKREAD"]);

function driverCode(err: LooseError): string {
	if (typeof err.code === "string") return err.code;
	const parent = (err as { parent?: { code?: unknown } }).parent;
	return typeof parent?.code === "string" ? parent.code : "";
}

/** A unique key refused the row: Sequelize's error, or the driver's from a plain statement (lib/db/raw.ts). */
export function isDuplicateKey(err: unknown): boolean {
	const { name, code, message } = (err ?? {}) as { name?: string; code?: string; message?: string };
	if (name === "SequelizeUniqueConstraintError" || code === "ER_DUP_ENTRY") return true;
	return code === "SQLITE_CONSTRAINT" && /\bUNIQUE constraint failed\b/.test(message ?? "");
}

/** A MySQL transaction that lost to another (deadlock, lock wait, stale snapshot): running it again may succeed. */
export function isDbConflict(err: unknown): boolean {
	return DB_CONFLICT_CODES.has(driverCode(err as LooseError));
}

/** ioredis with Redis away (lib/state/redis.ts): a command on a closed connection, or refused while it reconnects (no offline queue). */
const REDIS_AWAY_MESSAGES = new Set(["Connection is closed.", "Stream isn't writeable and enableOfflineQueue options is false"]);

/** Moleculer errors that mean "the service you need is not there right now". */
const CLUSTER_UNAVAILABLE = new Set([
	"SERVICE_NOT_FOUND",
	"SERVICE_NOT_AVAILABLE",
	"REQUEST_TIMEOUT",
	"REQUEST_REJECTED",
	"QUEUE_FULL",
	"BAD_GATEWAY",
	"SERVICE_UNAVAILABLE",
	"GRACEFUL_STOP_TIMEOUT",
]);

/**
 * Problems named in one answer: a body of 90,000 unknown keys was answered with every one of them,
 * twice (message and details), 39 MB for a 1 MB request.
 */
const MAX_FIELD_PROBLEMS = 20;

function validationFields(data: unknown): FieldProblem[] {
	if (!Array.isArray(data)) return [];
	return data.flatMap((item: { field?: unknown; message?: unknown; type?: unknown; actual?: unknown }) => {
		// `$$strict` names the unexpected keys in `actual`: they are field names, safe to echo.
		if (item.type === "objectStrict" && typeof item.actual === "string") {
			const prefix = typeof item.field === "string" && item.field ? `${item.field}.` : "";
			return item.actual.split(",").map((key) => ({
				field: prefix + key.trim().slice(0, 64),
				message: "Unknown field",
				type: "objectStrict",
			}));
		}
		return [
			{
				field: typeof item.field === "string" ? item.field : "",
				message: typeof item.message === "string" ? item.message : "is invalid",
				...(typeof item.type === "string" ? { type: item.type } : {}),
			},
		];
	});
}

/** The fields' problems as an answer names them: the first MAX_FIELD_PROBLEMS, and how many more there were. */
function validationError(data: unknown): ApiError {
	const all = validationFields(data);
	if (all.length === 0) return build("VALIDATION_ERROR");
	const fields = all.slice(0, MAX_FIELD_PROBLEMS);
	const more = all.length - fields.length;
	// A field may fail two rules (empty and too short): named once.
	const named = [...new Set(fields.map((f) => f.field))].join(", ");
	return build("VALIDATION_ERROR", more > 0 ? `Invalid ${named} and ${more} more` : `Invalid ${named}`, more > 0 ? { fields, more_fields: more } : { fields });
}

function isErrorCode(value: unknown): value is ApiErrorCode {
	return typeof value === "string" && Object.prototype.hasOwnProperty.call(ERROR_STATUS, value);
}

function plainDetails(data: unknown): Record<string, unknown> | undefined {
	return data && typeof data === "object" && !Array.isArray(data) ? (data as Record<string, unknown>) : undefined;
}

function build(code: ApiErrorCode, message?: string, details?: Record<string, unknown>): ApiError {
	const body: ApiErrorBody = { error: { code, message: message ?? DEFAULT_MESSAGE[code] } };
	if (details && Object.keys(details).length > 0) body.error.details = details;
	const result: ApiError = { status: ERROR_STATUS[code], body };
	const retryAfter = details?.retry_after;
	if (typeof retryAfter === "number") result.retryAfter = retryAfter;
	return result;
}

export function toApiError(input: unknown): ApiError {
	const err = (input ?? {}) as LooseError;
	const name = typeof err.name === "string" ? err.name : "";
	const type = typeof err.type === "string" ? err.type : "";
	const numericCode = typeof err.code === "number" ? err.code : undefined;

	// Our own errors, also after a transporter hop (name, code, type and data survive it).
	if (isErrorCode(type) && numericCode === ERROR_STATUS[type]) {
		if (type === "INTERNAL") return build("INTERNAL");
		if (type === "VALIDATION_ERROR" && Array.isArray(err.data)) return validationError(err.data);
		return build(type, err.message, plainDetails(err.data));
	}
	// fastest-validator through Moleculer's validator: 422 VALIDATION_ERROR with a list of fields.
	if (name === "ValidationError" || (type === "VALIDATION_ERROR" && numericCode === 422)) return validationError(err.data);
	if (DB_UNAVAILABLE.has(name)) return build("UNAVAILABLE", "Database is unavailable, try again later");
	const code = driverCode(err);
	// Only under Sequelize's wrapper: a bare ECONNREFUSED may be Redis or Telegram (raw.ts wraps its own).
	if (name.startsWith("Sequelize") && DB_LOST_CODES.has(code)) return build("UNAVAILABLE", "Database is unavailable, try again later");
	if (DB_CONFLICT_CODES.has(code)) return build("UNAVAILABLE", "Database is busy, try again");
	if (isDuplicateKey(err)) return build("CONFLICT", "A resource with these values already exists");
	if (name === "SequelizeForeignKeyConstraintError") return build("BAD_REQUEST", "A referenced resource does not exist");
	if (CLUSTER_UNAVAILABLE.has(type)) return build("UNAVAILABLE");
	// Redis away: a command ioredis gave up on, or one it refused at once.
	if (name === "MaxRetriesPerRequestError" || REDIS_AWAY_MESSAGES.has(String(err.message))) return build("UNAVAILABLE", "Shared state is unavailable, try again later");

	// body-parser (raw-body) errors carry an HTTP status and a type of their own.
	const status = typeof err.status === "number" ? err.status : typeof err.statusCode === "number" ? err.statusCode : undefined;
	if (type === "entity.too.large" || status === 413) return build("PAYLOAD_TOO_LARGE");
	if (type === "entity.parse.failed") return build("BAD_REQUEST", "Malformed JSON body");
	if (type === "encoding.unsupported" || type === "charset.unsupported" || status === 415) {
		return build("UNSUPPORTED_MEDIA_TYPE", "Unsupported body encoding or charset");
	}
	if (type === "request.aborted" || type === "request.size.invalid" || type === "stream.encoding.set") {
		return build("BAD_REQUEST", "Incomplete or inconsistent request body");
	}

	// moleculer-web's own errors: map by status, with our wording.
	const httpStatus = numericCode ?? status;
	switch (httpStatus) {
		case 400:
			return build("BAD_REQUEST", type === "INVALID_REQUEST_BODY" ? "Malformed request body" : undefined);
		case 401:
			return build("UNAUTHORIZED");
		case 403:
			return build("FORBIDDEN");
		case 404:
			return build("NOT_FOUND");
		case 409:
			return build("CONFLICT");
		case 413:
			return build("PAYLOAD_TOO_LARGE");
		case 415:
			return build("UNSUPPORTED_MEDIA_TYPE");
		case 422:
			return build("VALIDATION_ERROR");
		case 429:
			return build("RATE_LIMITED");
		case 502:
		case 503:
		case 504:
			return build("UNAVAILABLE");
		default:
			return build("INTERNAL");
	}
}

/** True when an error is the caller's fault (4xx): such errors are not logged as failures. */
export function isClientError(err: unknown): boolean {
	return toApiError(err).status < 500;
}
