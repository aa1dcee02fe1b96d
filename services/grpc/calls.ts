/**
 * One unary RPC, bridged: refuse while draining, refuse undecodable bytes, authenticate and charge
 * the rate limit, then call the route's action (the one REST calls) with the principal in ctx.meta
 * and the call's remaining deadline as its timeout, and answer with the mapped reply or status.
 */
import type { handleUnaryCall, Metadata, sendUnaryData, ServerUnaryCall } from "@grpc/grpc-js";
import type { CallingOptions, LoggerInstance } from "moleculer";
import { fail, GatewayError, isClientError } from "../../lib/errors";
import type { GatewayMeta } from "../../lib/meta";
import type { Caller } from "./auth";
import type { UnaryRoute } from "./codec";
import { deadlineExceeded, toGrpcError, type GrpcError } from "./errors";
import { isMalformed, type Malformed } from "./proto";

export const SHUTTING_DOWN = "server shutting down";

/** What the bridge needs from the service. */
export interface GrpcBridge {
	isDraining(): boolean;
	authenticate(metadata: Metadata, peer: string): Promise<Caller>;
	callAction<T>(action: string, params: Record<string, unknown>, options: CallingOptions): Promise<T>;
	logger: Pick<LoggerInstance, "warn" | "error">;
}

/** The longest a Node timer waits; a longer delay fires after 1 ms. */
const MAX_TIMER_MS = 2 ** 31 - 1;

/**
 * A call's deadline in epoch ms; Infinity when the client set none, or one further away than a
 * timer can wait (about 24.8 days): timed out by a timer, such a call would end at once.
 */
export function deadlineOf(call: { getDeadline(): Date | number }): number {
	const raw = call.getDeadline();
	const deadline = raw instanceof Date ? raw.getTime() : raw;
	return deadline - Date.now() > MAX_TIMER_MS ? Infinity : deadline;
}

class DeadlinePassed extends Error {}

/** A timeout the Moleculer call got because of the client's deadline, not a service that is away. */
function hitDeadline(err: unknown, deadline: number): boolean {
	return Number.isFinite(deadline) && (err as { type?: unknown }).type === "REQUEST_TIMEOUT" && Date.now() >= deadline - 50;
}

export function malformedRequest(): GatewayError {
	return fail.badRequest("The request is not a valid protobuf message of the method's request type");
}

/** Logs what is not the client's fault, as REST does; never the request itself. */
export function logFailure(logger: GrpcBridge["logger"], path: string, err: unknown): void {
	if (!isClientError(err)) logger.error(`gRPC ${path} failed:`, err);
}

export function unaryHandler<Req, Res>(bridge: GrpcBridge, route: UnaryRoute<Req, Res>): handleUnaryCall<Req | Malformed, Res> {
	return (call: ServerUnaryCall<Req | Malformed, Res>, callback: sendUnaryData<Res>) => {
		const deadline = deadlineOf(call);
		let answered = false;
		let timer: NodeJS.Timeout | undefined;
		const answer = (error: GrpcError | null, reply?: Res) => {
			if (answered) return;
			answered = true;
			clearTimeout(timer);
			if (error) callback(error);
			else callback(null, reply);
		};
		if (Number.isFinite(deadline)) timer = setTimeout(() => answer(deadlineExceeded()), Math.max(0, deadline - Date.now()));

		const run = async (): Promise<Res> => {
			if (bridge.isDraining()) throw new GatewayError("UNAVAILABLE", SHUTTING_DOWN);
			const request = call.request;
			if (isMalformed(request)) throw malformedRequest();
			const caller = await bridge.authenticate(call.metadata, call.getPeer());
			const params = route.params(request);
			const meta: GatewayMeta = { principal: caller.principal, clientIp: caller.clientIp, ...route.meta?.(request) };
			const options: CallingOptions = { meta };
			if (Number.isFinite(deadline)) {
				const remaining = deadline - Date.now();
				if (remaining <= 0) throw new DeadlinePassed();
				options.timeout = remaining;
			}
			return route.reply(await bridge.callAction(route.action, params, options));
		};
		run().then(
			(reply) => answer(null, reply),
			(err: unknown) => {
				if (err instanceof DeadlinePassed || hitDeadline(err, deadline)) return answer(deadlineExceeded());
				logFailure(bridge.logger, call.getPath(), err);
				answer(toGrpcError(err, route.fields));
			},
		);
	};
}
