import { status } from "@grpc/grpc-js";
import { Errors } from "moleculer";
import { fail, GatewayError, type ApiErrorCode } from "../../lib/errors";
import { closeError, deadlineExceeded, GRPC_STATUS, toGrpcError } from "../../services/grpc/errors";

const trailers = (err: ReturnType<typeof toGrpcError>) => err.metadata.getMap();

describe("gRPC errors", () => {
	it.each<[ApiErrorCode, status]>([
		["VALIDATION_ERROR", status.INVALID_ARGUMENT],
		["BAD_REQUEST", status.INVALID_ARGUMENT],
		["PAYLOAD_TOO_LARGE", status.INVALID_ARGUMENT],
		["UNAUTHORIZED", status.UNAUTHENTICATED],
		["FORBIDDEN", status.PERMISSION_DENIED],
		["NOT_FOUND", status.NOT_FOUND],
		["CONFLICT", status.ALREADY_EXISTS],
		["RATE_LIMITED", status.RESOURCE_EXHAUSTED],
		["UNAVAILABLE", status.UNAVAILABLE],
		["INTERNAL", status.INTERNAL],
	])("%s is %s, with the API message as details and x-error-code", (code, grpcCode) => {
		expect(GRPC_STATUS[code]).toBe(grpcCode);
		const err = toGrpcError(new GatewayError(code, `a ${code} happened`));
		expect(err.code).toBe(grpcCode);
		expect(trailers(err)).toEqual({ "x-error-code": code });
		expect(err.details).toBe(code === "INTERNAL" ? "Internal server error" : `a ${code} happened`);
	});

	it("details travel as JSON in x-error-details", () => {
		const err = toGrpcError(fail.rateLimited(3));
		expect(err.code).toBe(status.RESOURCE_EXHAUSTED);
		expect(trailers(err)).toEqual({ "x-error-code": "RATE_LIMITED", "x-error-details": '{"retry_after":3}' });
	});

	it("details in any script travel as ASCII JSON (grpc-js throws on anything else in metadata) that reads back the same", () => {
		const details = { fields: [{ field: "token", message: "Telegram refused the token: jeton révoqué 🚫 — 無効\u0007" }] };
		const err = toGrpcError(new GatewayError("VALIDATION_ERROR", "Invalid token", details));
		const sent = trailers(err)["x-error-details"] as string;
		expect(sent).toMatch(/^[\x20-\x7e]+$/);
		expect(JSON.parse(sent)).toEqual(details);
	});

	it("fastest-validator's errors name the proto's fields where the action's params differ", () => {
		const err = new Errors.ValidationError("Parameters validation error!", "VALIDATION_ERROR", [
			{ type: "required", field: "id", message: "The 'id' field is required." },
			{ type: "stringMin", field: "text", message: "The 'text' field length must be greater than or equal to 1 characters long.", actual: "" },
		]);
		const mapped = toGrpcError(err, { id: "chat_id" });
		expect(mapped.code).toBe(status.INVALID_ARGUMENT);
		expect(mapped.details).toBe("Invalid chat_id, text");
		expect(JSON.parse(trailers(mapped)["x-error-details"] as string)).toEqual({
			fields: [
				{ field: "chat_id", message: "The 'chat_id' field is required.", type: "required" },
				{ field: "text", message: "The 'text' field length must be greater than or equal to 1 characters long.", type: "stringMin" },
			],
		});
		expect(toGrpcError(err).details).toBe("Invalid id, text");
	});

	it("anything unknown is INTERNAL without a stack, SQL or the original message", () => {
		const err = new Error("SQLITE_ERROR: near \"SELECT\": syntax error\n    at Database.run (/app/x.ts:1:1)");
		const mapped = toGrpcError(err);
		expect(mapped.code).toBe(status.INTERNAL);
		expect(mapped.details).toBe("Internal server error");
		expect(JSON.stringify(trailers(mapped))).not.toMatch(/SELECT|at Database/);
	});

	it("a cluster service that is away is UNAVAILABLE", () => {
		expect(toGrpcError(new Errors.ServiceNotFoundError({ action: "chats.list" })).code).toBe(status.UNAVAILABLE);
		expect(toGrpcError(new Errors.RequestTimeoutError({ action: "chats.list", nodeID: "n1" })).code).toBe(status.UNAVAILABLE);
	});

	it("streams closed by the hub or the server", () => {
		expect(closeError({ code: "RATE_LIMITED", message: "The client reads too slowly" })).toMatchObject({ code: status.RESOURCE_EXHAUSTED, details: "The client reads too slowly" });
		expect(closeError({ code: "UNAUTHORIZED", message: "Token expired" }).code).toBe(status.UNAUTHENTICATED);
		expect(closeError({ code: "FORBIDDEN", message: "revoked" }).code).toBe(status.PERMISSION_DENIED);
		const shutdown = closeError({ code: "UNAVAILABLE", message: "server shutting down" });
		expect([shutdown.code, shutdown.details, trailers(shutdown)]).toEqual([status.UNAVAILABLE, "server shutting down", { "x-error-code": "UNAVAILABLE" }]);
		expect(deadlineExceeded()).toMatchObject({ code: status.DEADLINE_EXCEEDED, details: "Deadline exceeded" });
	});
});
