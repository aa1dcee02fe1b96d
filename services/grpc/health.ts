/**
 * The standard health service (grpc.health.v1, grpc-health-check's definition) for the server's
 * fixed names, all with the server's one status. grpc-health-check's own implementation files every
 * Watch under the name the client sent and keeps the name after the call ends: a client without
 * credentials grew the server by about the bytes of the names it made up (1.5 GB for 1.5 GB sent).
 * Here an unknown name is answered SERVICE_UNKNOWN and the stream ends (the names never change), and
 * nothing outlives a call.
 */
import { status as GrpcStatus, type sendUnaryData, type Server, type ServerUnaryCall, type ServerWritableStream, type UntypedServiceImplementation } from "@grpc/grpc-js";
import { service as healthService, type ServingStatus } from "grpc-health-check";

interface HealthRequest {
	service: string;
}
interface HealthAnswer {
	status: ServingStatus | "SERVICE_UNKNOWN";
}

/** How much of an unknown name an error repeats. */
const NAME_SHOWN = 64;

export class GatewayHealth {
	private status: ServingStatus = "NOT_SERVING";
	private readonly watchers = new Set<ServerWritableStream<HealthRequest, HealthAnswer>>();
	private readonly names: ReadonlySet<string>;

	constructor(names: readonly string[]) {
		this.names = new Set(names);
	}

	setStatus(status: ServingStatus): void {
		if (status === this.status) return;
		this.status = status;
		for (const call of this.watchers) call.write({ status });
	}

	addToServer(server: Server): void {
		const handlers: UntypedServiceImplementation = {
			check: (call: ServerUnaryCall<HealthRequest, HealthAnswer>, callback: sendUnaryData<HealthAnswer>) => {
				const name = call.request.service;
				if (this.names.has(name)) return callback(null, { status: this.status });
				callback({ code: GrpcStatus.NOT_FOUND, details: `Health status unknown for service ${JSON.stringify(name.slice(0, NAME_SHOWN))}` });
			},
			watch: (call: ServerWritableStream<HealthRequest, HealthAnswer>) => {
				if (!this.names.has(call.request.service)) {
					call.write({ status: "SERVICE_UNKNOWN" });
					call.end();
					return;
				}
				this.watchers.add(call);
				const forget = () => this.watchers.delete(call);
				call.on("cancelled", forget);
				call.on("close", forget);
				call.write({ status: this.status });
			},
			list: (_call: ServerUnaryCall<unknown, unknown>, callback: sendUnaryData<{ statuses: Record<string, { status: ServingStatus }> }>) => {
				callback(null, { statuses: Object.fromEntries([...this.names].map((name) => [name, { status: this.status }])) });
			},
		};
		server.addService(healthService as never, handlers);
	}
}
