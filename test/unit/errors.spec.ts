import Redis from "ioredis";
import { Errors } from "moleculer";
import { fail, GatewayError, isEndpointFailure, toApiError } from "../../lib/errors";

describe("toApiError", () => {
	it("keeps our own errors' code, message and details", () => {
		const err = fail.conflict("A bot with this token is already registered");
		expect(toApiError(err)).toEqual({
			status: 409,
			body: { error: { code: "CONFLICT", message: "A bot with this token is already registered" } },
		});
	});

	it("recognises our errors after a transporter hop (plain fields, no class)", () => {
		const remote = { name: "GatewayError", message: "chat not found", code: 404, type: "NOT_FOUND", data: undefined };
		expect(toApiError(remote).body.error).toEqual({ code: "NOT_FOUND", message: "chat not found" });
	});

	it("turns fastest-validator errors into 400 with the fields and without the values sent", () => {
		const err = new Errors.ValidationError("Parameters validation error!", "VALIDATION_ERROR", [
			{ type: "string", field: "password", message: "The 'password' field must be a string.", actual: 12345 },
			{ type: "required", field: "username", message: "The 'username' field is required." },
		]);
		const { status, body } = toApiError(err);
		expect(status).toBe(400);
		expect(body.error.code).toBe("VALIDATION_ERROR");
		expect(body.error.message).toBe("Invalid password, username");
		expect(body.error.details).toEqual({
			fields: [
				{ field: "password", message: "The 'password' field must be a string.", type: "string" },
				{ field: "username", message: "The 'username' field is required.", type: "required" },
			],
		});
		expect(JSON.stringify(body)).not.toContain("12345");
	});

	it("maps body-parser failures to 400, 413 and 415", () => {
		expect(toApiError({ type: "entity.parse.failed", status: 400, message: "Unexpected token } in JSON" }).body.error).toEqual({
			code: "BAD_REQUEST",
			message: "Malformed JSON body",
		});
		expect(toApiError({ type: "entity.too.large", status: 413 }).status).toBe(413);
		expect(toApiError({ type: "charset.unsupported", status: 415 }).status).toBe(415);
	});

	it("answers 503 while the database or a service is away", () => {
		expect(toApiError({ name: "SequelizeConnectionRefusedError", message: "connect ECONNREFUSED 127.0.0.1:3306" })).toEqual({
			status: 503,
			body: { error: { code: "UNAVAILABLE", message: "Database is unavailable, try again later" } },
		});
		expect(toApiError(new Errors.ServiceNotAvailableError({ action: "ingest.receive" })).status).toBe(503);
		expect(toApiError(new Errors.RequestTimeoutError({ action: "x", nodeID: "n" })).status).toBe(503);
	});

	it("answers 503 when Redis is away: a command ioredis gave up on, and one on a closed connection (a login was 500)", async () => {
		// Port 1: nothing listens. The options are those of lib/state/redis.ts that matter here.
		const client = new Redis("redis://127.0.0.1:1", { maxRetriesPerRequest: 1, retryStrategy: (times) => (times > 3 ? null : 10) });
		client.on("error", () => undefined);
		const gaveUp: unknown = await client.get("x").catch((err: unknown) => err);
		expect((gaveUp as Error).name).toBe("MaxRetriesPerRequestError");
		expect(toApiError(gaveUp)).toMatchObject({ status: 503, body: { error: { code: "UNAVAILABLE" } } });
		// Once ioredis stops reconnecting, every command fails at once with "Connection is closed.".
		if (client.status !== "end") await new Promise((resolve) => client.once("end", resolve));
		const closed: unknown = await client.get("x").catch((err: unknown) => err);
		expect(toApiError(closed)).toMatchObject({ status: 503, body: { error: { code: "UNAVAILABLE" } } });
		// lib/state/redis.ts runs without the offline queue: while it reconnects, a command fails at once.
		const unqueued = new Redis("redis://127.0.0.1:1", { enableOfflineQueue: false, lazyConnect: true, retryStrategy: () => null });
		unqueued.on("error", () => undefined);
		const refused: unknown = await unqueued.get("x").catch((err: unknown) => err);
		expect(toApiError(refused)).toMatchObject({ status: 503, body: { error: { code: "UNAVAILABLE" } } });
		unqueued.disconnect();
	});

	it("answers 503 for a database connection lost mid-statement and for lock conflicts (the fault suite's MariaDB kill)", () => {
		// What Sequelize throws when MariaDB dies under a running transaction: a DatabaseError around the driver's error.
		const lost = (code: string) => Object.assign(new Error("Connection lost: The server closed the connection."), { name: "SequelizeDatabaseError", parent: { code, fatal: true } });
		for (const code of ["PROTOCOL_CONNECTION_LOST", "ECONNRESET"]) {
			expect(toApiError(lost(code))).toEqual({ status: 503, body: { error: { code: "UNAVAILABLE", message: "Database is unavailable, try again later" } } });
		}
		// A deadlock from lib/db/raw.ts arrives as the driver's own error (also after a transporter hop).
		const deadlock = Object.assign(new Error("Deadlock found when trying to get lock; try restarting transaction"), { code: "ER_LOCK_DEADLOCK" });
		expect(toApiError(deadlock)).toEqual({ status: 503, body: { error: { code: "UNAVAILABLE", message: "Database is busy, try again" } } });
		expect(toApiError({ name: "SequelizeDatabaseError", message: "x", parent: { code: "ER_LOCK_WAIT_TIMEOUT" } }).status).toBe(503);
		// A bare ECONNREFUSED (Redis, Telegram) is not the database's: it stays an internal error here.
		expect(toApiError(Object.assign(new Error("connect ECONNREFUSED 127.0.0.1:6379"), { code: "ECONNREFUSED" })).status).toBe(500);
	});

	it("answers 503 for a SQLite file the database cannot write or read now (disk full, I/O error, busy, read-only, locked)", () => {
		const wrapped = (code: string) => Object.assign(new Error(`${code}: simulated`), { name: "SequelizeDatabaseError", parent: { code } });
		for (const code of ["SQLITE_FULL", "SQLITE_IOERR", "SQLITE_BUSY", "SQLITE_READONLY", "SQLITE_CANTOPEN", "SQLITE_LOCKED"]) {
			expect([code, toApiError(wrapped(code)).status]).toEqual([code, 503]);
		}
		// A statement's own fault is not the database being away.
		expect(toApiError(wrapped("SQLITE_ERROR")).status).toBe(500);
	});

	it("answers 409 for a unique key a plain statement broke, as for Sequelize's error (a raced Idempotency-Key was 500)", () => {
		const sqlite = Object.assign(new Error("SQLITE_CONSTRAINT: UNIQUE constraint failed: messages.client_key"), { code: "SQLITE_CONSTRAINT" });
		const mysql = Object.assign(new Error("Duplicate entry 'user:1:k' for key 'messages_client_key'"), { code: "ER_DUP_ENTRY" });
		for (const err of [sqlite, mysql]) expect(toApiError(err)).toMatchObject({ status: 409, body: { error: { code: "CONFLICT" } } });
		// Another constraint of SQLite's is not a duplicate.
		expect(toApiError(Object.assign(new Error("SQLITE_CONSTRAINT: NOT NULL constraint failed: messages.text"), { code: "SQLITE_CONSTRAINT" })).status).toBe(500);
	});

	it("never passes on the message, stack or SQL of an unexpected error", () => {
		const err = Object.assign(new Error("ER_PARSE_ERROR near 'SELECT password_hash FROM users'"), { name: "SequelizeDatabaseError" });
		const apiError = toApiError(err);
		expect(apiError).toEqual({ status: 500, body: { error: { code: "INTERNAL", message: "Internal server error" } } });
		expect(toApiError(new TypeError("cannot read x of undefined")).body.error.message).toBe("Internal server error");
		expect(toApiError(new GatewayError("INTERNAL", "secret detail")).body.error.message).toBe("Internal server error");
		expect(toApiError(undefined).status).toBe(500);
	});

	it("hands Retry-After up for rate limits", () => {
		expect(toApiError(fail.rateLimited(3)).retryAfter).toBe(3);
	});
});

describe("isEndpointFailure (the circuit breaker's check) and retryable (the retry policy's)", () => {
	/** What Moleculer's transit restores on the caller's node from a remote error (name, code, type, data, retryable kept). */
	const overTheWire = (err: Errors.MoleculerError) => Object.assign(new Error(err.message), { name: err.name, code: err.code, type: err.type, data: err.data, retryable: err.retryable });

	it("an answer about the request or its subject is not, 503s included, here or after a hop", () => {
		const refusals = [
			new GatewayError("UNAVAILABLE", "Telegram refuses bot 5's token", { bot_token_refused: true }),
			fail.unavailable("Telegram (getMe)"),
			fail.notFound("Chat"),
			fail.validation([{ field: "text", message: "too long" }]),
		];
		for (const err of refusals) {
			expect(err.retryable).toBe(false);
			expect(isEndpointFailure(err)).toBe(false);
			expect(isEndpointFailure(overTheWire(err))).toBe(false);
		}
	});

	it("the node's own failure is: its database away, a timeout, an unexpected error", () => {
		const outage = new GatewayError("UNAVAILABLE", "Database is unavailable, try again later", undefined, { endpointFailure: true });
		expect(outage.retryable).toBe(true);
		expect(isEndpointFailure(outage)).toBe(true);
		expect(isEndpointFailure(overTheWire(outage))).toBe(true);
		expect(isEndpointFailure(new Errors.RequestTimeoutError({ action: "chats.send", nodeID: "n1" }))).toBe(true);
		expect(isEndpointFailure(new Errors.MoleculerError("boom", 500))).toBe(true);
		expect(isEndpointFailure(null)).toBe(false);
	});
});
