import { Metadata, status, type sendUnaryData, type ServerUnaryCall, type ServiceError } from "@grpc/grpc-js";
import { Errors, type CallingOptions } from "moleculer";
import { fail } from "../../lib/errors";
import type { Principal } from "../../services/auth/principal";
import { unaryHandler, type GrpcBridge } from "../../services/grpc/calls";
import { ROUTES } from "../../services/grpc/codec";
import type { GrpcError } from "../../services/grpc/errors";
import { MALFORMED } from "../../services/grpc/proto";

const principal: Principal = { type: "user", id: 1, user_id: 1, username: "u", roles: ["operator"], permissions: ["messages:send"], rate_limit: 10, is_admin: false };

interface Seen {
	action: string;
	params: Record<string, unknown>;
	options: CallingOptions;
}

function bridge(act: (seen: Seen) => Promise<unknown>, overrides: Partial<GrpcBridge> = {}) {
	const seen: Seen[] = [];
	const b: GrpcBridge = {
		logger: { warn: jest.fn(), error: jest.fn() },
		isDraining: () => false,
		authenticate: jest.fn(async () => ({ principal, credential: "cred", clientIp: "10.0.0.9" })),
		callAction: <T>(action: string, params: Record<string, unknown>, options: CallingOptions) => {
			const call = { action, params, options };
			seen.push(call);
			return act(call) as Promise<T>;
		},
		...overrides,
	};
	return { b, seen };
}

function invoke<Req, Res>(handler: ReturnType<typeof unaryHandler<Req, Res>>, request: unknown, deadline: number = Infinity) {
	return new Promise<{ error: GrpcError | null; value?: Res | null }>((resolve) => {
		const call = { request, metadata: new Metadata(), getPeer: () => "10.0.0.9:1", getDeadline: () => deadline, getPath: () => "/gateway.v1.X/Y" };
		const callback: sendUnaryData<Res> = (error, value) => resolve({ error: error as GrpcError | null, value });
		handler(call as unknown as ServerUnaryCall<Req, Res>, callback);
	});
}

const sendRequest = { chat_id: 3, text: "hi", parse_mode: "", reply_to_message_id: 0, disable_notification: false, idempotency_key: "key-1" };
const sentMessage = { id: 9, seq: 20, chat_id: 3, bot_id: 1, telegram_message_id: 77, direction: "outgoing", type: "text", text: "hi", caption: null, entities: null, from: null, reply_to_message_id: null, thread_id: null, media: null, date: null, edit_date: null, status: "sent" };

describe("unaryHandler", () => {
	it("calls the route's action with the principal, client address and idempotency key in meta, and maps the reply", async () => {
		const { b, seen } = bridge(async () => sentMessage);
		const { error, value } = await invoke(unaryHandler(b, ROUTES.SendMessage), sendRequest);
		expect(error).toBeNull();
		expect(value).toMatchObject({ queued: false, message: { id: 9, text: "hi", status: "sent" } });
		expect(seen).toEqual([{ action: "chats.send", params: { id: 3, text: "hi" }, options: { meta: { principal, clientIp: "10.0.0.9", idempotencyKey: "key-1" } } }]);
	});

	it("passes the remaining deadline as the call's timeout", async () => {
		const { b, seen } = bridge(async () => ({ data: [], next_cursor: null }));
		await invoke(unaryHandler(b, ROUTES.ListChats), { bot_id: 0, limit: 0, cursor: "" }, Date.now() + 3_000);
		expect(seen[0]!.options.timeout).toBeGreaterThan(2_800);
		expect(seen[0]!.options.timeout).toBeLessThanOrEqual(3_000);
	});

	it("a deadline further away than a timer can wait (30 days) is no timeout, not one that fires at once", async () => {
		const { b, seen } = bridge(async () => {
			await new Promise((r) => setTimeout(r, 20));
			return { data: [], next_cursor: null };
		});
		const { error } = await invoke(unaryHandler(b, ROUTES.ListChats), { bot_id: 0, limit: 0, cursor: "" }, Date.now() + 30 * 86_400_000);
		expect(error).toBeNull();
		expect(seen[0]!.options.timeout).toBeUndefined();
	});

	it("answers DEADLINE_EXCEEDED when the deadline passes, whatever the action is still doing", async () => {
		const { b } = bridge(() => new Promise(() => undefined));
		const started = Date.now();
		const { error } = await invoke(unaryHandler(b, ROUTES.GetChat), { id: 1 }, Date.now() + 50);
		expect(error?.code).toBe(status.DEADLINE_EXCEEDED);
		expect(Date.now() - started).toBeLessThan(1_000);
	});

	it("a Moleculer timeout at the deadline is DEADLINE_EXCEEDED; one long before it is UNAVAILABLE", async () => {
		const timeout = () => Promise.reject(new Errors.RequestTimeoutError({ action: "chats.get", nodeID: "n" }));
		const atDeadline = bridge(async () => {
			await new Promise((resolve) => setTimeout(resolve, 30));
			return timeout();
		});
		expect((await invoke(unaryHandler(atDeadline.b, ROUTES.GetChat), { id: 1 }, Date.now() + 40)).error?.code).toBe(status.DEADLINE_EXCEEDED);
		const early = bridge(timeout);
		expect((await invoke(unaryHandler(early.b, ROUTES.GetChat), { id: 1 }, Date.now() + 10_000)).error?.code).toBe(status.UNAVAILABLE);
	});

	it("maps the action's errors, naming the proto's fields, and logs only what is not the client's fault", async () => {
		const invalid = bridge(async () => {
			throw new Errors.ValidationError("Parameters validation error!", "VALIDATION_ERROR", [{ type: "required", field: "id", message: "The 'id' field is required." }]);
		});
		const { error } = await invoke(unaryHandler(invalid.b, ROUTES.SendMessage), { ...sendRequest, chat_id: 0 });
		expect([error?.code, error?.details, error?.metadata.get("x-error-code")]).toEqual([status.INVALID_ARGUMENT, "Invalid chat_id", ["VALIDATION_ERROR"]]);
		expect(invalid.b.logger.error).not.toHaveBeenCalled();

		const broken = bridge(async () => {
			throw new Error("disk on fire");
		});
		const internal = await invoke(unaryHandler(broken.b, ROUTES.GetChat), { id: 1 });
		expect([internal.error?.code, internal.error?.details]).toEqual([status.INTERNAL, "Internal server error"]);
		expect(broken.b.logger.error).toHaveBeenCalledTimes(1);
	});

	it("refuses a draining server (UNAVAILABLE) and undecodable bytes before authenticating, a bad idempotency key (INVALID_ARGUMENT) before the action", async () => {
		const draining = bridge(async () => null, { isDraining: () => true });
		const shutdown = await invoke(unaryHandler(draining.b, ROUTES.GetChat), { id: 1 });
		expect([shutdown.error?.code, shutdown.error?.details]).toEqual([status.UNAVAILABLE, "server shutting down"]);
		expect(draining.b.authenticate).not.toHaveBeenCalled();

		const malformed = bridge(async () => null);
		const bad = await invoke(unaryHandler(malformed.b, ROUTES.GetChat), { [MALFORMED]: true });
		expect([bad.error?.code, bad.error?.metadata.get("x-error-code")]).toEqual([status.INVALID_ARGUMENT, ["BAD_REQUEST"]]);
		expect(malformed.b.authenticate).not.toHaveBeenCalled();

		const key = bridge(async () => sentMessage);
		const refused = await invoke(unaryHandler(key.b, ROUTES.SendMessage), { ...sendRequest, idempotency_key: "no spaces allowed" });
		expect([refused.error?.code, refused.error?.metadata.get("x-error-code")]).toEqual([status.INVALID_ARGUMENT, ["BAD_REQUEST"]]);
		expect(key.seen).toEqual([]);
	});

	it("an unauthenticated call never reaches the action", async () => {
		const { b, seen } = bridge(async () => null, { authenticate: async () => Promise.reject(fail.unauthorized("Invalid token")) });
		const { error } = await invoke(unaryHandler(b, ROUTES.ListBots), { limit: 0, cursor: "" });
		expect([error?.code, (error as unknown as ServiceError)?.details]).toEqual([status.UNAUTHENTICATED, "Invalid token"]);
		expect(seen).toEqual([]);
	});
});
