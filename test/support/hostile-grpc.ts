/**
 * gRPC client pieces for the hostile-input tests: the gateway.v1 methods from proto/gateway.proto,
 * credentials in metadata, and one call (unary or server stream) with any serializer, ending in a
 * status either way.
 */
import { join } from "node:path";
import * as grpc from "@grpc/grpc-js";
import { loadSync, type Options } from "@grpc/proto-loader";
import type { ServiceBroker } from "moleculer";

const GRPC_OPTIONS: Options = { keepCase: true, longs: Number, enums: String, defaults: true, oneofs: true };
const gatewayProto = loadSync(join(__dirname, "..", "..", "proto", "gateway.proto"), GRPC_OPTIONS);

/** The service of each gateway.v1 RPC. */
export const GRPC_SERVICE_OF: Record<string, string> = {
	StreamMessages: "MessageService",
	StreamChatMessages: "MessageService",
	SendMessage: "MessageService",
	GetMessages: "MessageService",
	ListChats: "ChatService",
	GetChat: "ChatService",
	ListBots: "BotService",
	GetBot: "BotService",
	CreateBot: "BotService",
	DeleteBot: "BotService",
};
export const GRPC_STREAMS = new Set(["StreamMessages", "StreamChatMessages"]);

export type GrpcMethod = grpc.MethodDefinition<object, Record<string, unknown>>;

export function grpcMethod(name: string): GrpcMethod {
	return (gatewayProto[`gateway.v1.${GRPC_SERVICE_OF[name]}`] as grpc.ServiceDefinition)[name] as GrpcMethod;
}

/** Metadata carrying `authorization: Bearer <credential>` (or nothing), plus any extra entries. */
export function grpcCredentials(credential?: string, extra: Record<string, string> = {}): grpc.Metadata {
	const md = new grpc.Metadata();
	if (credential !== undefined) md.set("authorization", `Bearer ${credential}`);
	for (const [key, value] of Object.entries(extra)) md.set(key, value);
	return md;
}

export interface GrpcOutcome {
	/** The unary answer, or the events a stream sent before it ended. */
	value?: unknown;
	events: unknown[];
	code: grpc.status;
	details: string;
	apiCode?: string;
	/** A stream the server accepted (its headers arrived) and that was still open when we cancelled it. */
	openStream: boolean;
}

/**
 * One call, unary or server stream, with the given (de)serializers: a stream is cancelled once it has
 * sent `keepEvents` events or stayed open for `openMs` (then it was accepted: openStream).
 */
export function grpcCall(
	client: grpc.Client,
	name: string,
	request: unknown,
	md: grpc.Metadata,
	options: { serialize?: (value: unknown) => Buffer; openMs?: number; keepEvents?: number } = {},
): Promise<GrpcOutcome> {
	const method = grpcMethod(name);
	const serialize = options.serialize ?? (method.requestSerialize as (value: unknown) => Buffer);
	const deserialize = method.responseDeserialize as (bytes: Buffer) => unknown;
	return new Promise((resolve) => {
		if (!GRPC_STREAMS.has(name)) {
			client.makeUnaryRequest(method.path, serialize, deserialize, request, md, { deadline: Date.now() + 10_000 }, (error, value) => {
				resolve(error ? { code: error.code, details: error.details, apiCode: error.metadata?.get("x-error-code")[0] as string | undefined, events: [], openStream: false } : { value, events: [], code: grpc.status.OK, details: "", openStream: false });
			});
			return;
		}
		const events: unknown[] = [];
		let headers = false;
		let timer: NodeJS.Timeout | undefined;
		// A stream that neither ends nor is accepted within 10 s ends with DEADLINE_EXCEEDED: a hang.
		const call = client.makeServerStreamRequest(method.path, serialize, deserialize, request, md, { deadline: Date.now() + 10_000 });
		const stop = () => call.cancel();
		call.on("metadata", () => {
			headers = true;
			timer ??= setTimeout(stop, options.openMs ?? 200);
		});
		call.on("data", (event: unknown) => {
			events.push(event);
			if (options.keepEvents !== undefined && events.length >= options.keepEvents) stop();
		});
		call.on("error", () => undefined);
		call.on("status", (status: grpc.StatusObject) => {
			clearTimeout(timer);
			const cancelledByUs = status.code === grpc.status.CANCELLED && headers;
			resolve({ events, code: cancelledByUs ? grpc.status.OK : status.code, details: status.details, apiCode: status.metadata.get("x-error-code")[0] as string | undefined, openStream: cancelledByUs });
		});
	});
}

/** gRPC codes that are a server failure rather than an answer to the input. */
export const GRPC_SERVER_FAILURES = new Set([grpc.status.INTERNAL, grpc.status.UNKNOWN, grpc.status.DATA_LOSS, grpc.status.UNIMPLEMENTED]);

/** The gRPC port the gateway's grpc service bound. */
export function grpcPortOf(broker: ServiceBroker): number {
	const port = (broker.getLocalService("grpc") as unknown as { port?: number } | undefined)?.port;
	if (!port) throw new Error("no grpc service on this node");
	return port;
}
