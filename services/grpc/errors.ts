/**
 * API errors as gRPC statuses. Whatever an action threw goes through toApiError first (the same
 * code, message and details REST would answer, never a stack or SQL), then becomes a status code
 * whose details string is the API message; the trailing metadata carries `x-error-code` (the API
 * code) and `x-error-details` (its details as JSON, when there are any).
 */
import { Metadata, status } from "@grpc/grpc-js";
import { toApiError, type ApiError, type ApiErrorCode, type FieldProblem } from "../../lib/errors";
import type { CloseReason } from "../../mixins/event-stream/subscription-hub";

export const GRPC_STATUS: Record<ApiErrorCode, status> = {
	VALIDATION_ERROR: status.INVALID_ARGUMENT,
	BAD_REQUEST: status.INVALID_ARGUMENT,
	PAYLOAD_TOO_LARGE: status.INVALID_ARGUMENT,
	UNSUPPORTED_MEDIA_TYPE: status.INVALID_ARGUMENT,
	UNAUTHORIZED: status.UNAUTHENTICATED,
	FORBIDDEN: status.PERMISSION_DENIED,
	NOT_FOUND: status.NOT_FOUND,
	CONFLICT: status.ALREADY_EXISTS,
	RATE_LIMITED: status.RESOURCE_EXHAUSTED,
	UNAVAILABLE: status.UNAVAILABLE,
	INTERNAL: status.INTERNAL,
};

export const ERROR_CODE_KEY = "x-error-code";
export const ERROR_DETAILS_KEY = "x-error-details";

/** What grpc-js takes as an error status (a callback's error, or a stream's "error" event). */
export interface GrpcError {
	code: status;
	details: string;
	metadata: Metadata;
}

/**
 * JSON in printable ASCII only: grpc-js throws on anything else in a metadata value, and details
 * carry what others wrote (Telegram's description of a refused token, a client's own field values).
 * The \u escapes keep it the same JSON.
 */
function asciiJson(value: unknown): string {
	return JSON.stringify(value).replace(/[^\x20-\x7e]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`);
}

export function grpcErrorOf(code: ApiErrorCode, message: string, details?: Record<string, unknown>): GrpcError {
	const metadata = new Metadata();
	metadata.set(ERROR_CODE_KEY, code);
	if (details && Object.keys(details).length > 0) metadata.set(ERROR_DETAILS_KEY, asciiJson(details));
	return { code: GRPC_STATUS[code], details: message, metadata };
}

/**
 * Names the offending fields as the proto does (`chat_id`) where the action's params differ (`id`),
 * and a REST header the proto carries as a field (`header: "Idempotency-Key"` -> `field: "idempotency_key"`).
 */
function renameFields(apiError: ApiError, fields: Record<string, string>): ApiError {
	const { error } = apiError.body;
	const header = error.details?.header;
	if (typeof header === "string" && fields[header] !== undefined) {
		const { header: _header, ...rest } = error.details!;
		return { ...apiError, body: { error: { ...error, details: { ...rest, field: fields[header] } } } };
	}
	const problems = error.details?.fields as FieldProblem[] | undefined;
	if (error.code !== "VALIDATION_ERROR" || !Array.isArray(problems)) return apiError;
	const renamed = problems.map((p) => {
		const field = fields[p.field];
		return field === undefined ? p : { ...p, field, message: p.message.split(`'${p.field}'`).join(`'${field}'`) };
	});
	return {
		...apiError,
		body: { error: { ...error, message: `Invalid ${renamed.map((p) => p.field).join(", ")}`, details: { ...error.details, fields: renamed } } },
	};
}

export function toGrpcError(err: unknown, fields?: Record<string, string>): GrpcError {
	let apiError = toApiError(err);
	if (fields) apiError = renameFields(apiError, fields);
	const { code, message, details } = apiError.body.error;
	return grpcErrorOf(code, message, details);
}

/** A live stream ended by the hub or the server: too slow, revoked, logged out, shutting down. */
export function closeError(reason: CloseReason): GrpcError {
	return grpcErrorOf(reason.code, reason.message);
}

export function deadlineExceeded(): GrpcError {
	return { code: status.DEADLINE_EXCEEDED, details: "Deadline exceeded", metadata: new Metadata() };
}
