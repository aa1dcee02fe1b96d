/**
 * How many live connections a node holds, by transport, for operators (`realtime.stats`,
 * `grpc.stats`, the REPL's `stats`). The transport is read from the subscriber id each endpoint
 * gives its connections: "io:" socket.io, "ws:" plain WebSocket, "grpc-" gRPC server streams.
 */
export interface StreamStats {
	connections: number;
	socketio: number;
	websocket: number;
	grpc_streams: number;
	subscriptions: number;
}

export function streamStats(subscriberIds: Iterable<string>, subscriptions: number): StreamStats {
	const stats: StreamStats = { connections: 0, socketio: 0, websocket: 0, grpc_streams: 0, subscriptions };
	for (const id of subscriberIds) {
		stats.connections += 1;
		if (id.startsWith("io:")) stats.socketio += 1;
		else if (id.startsWith("ws:")) stats.websocket += 1;
		else if (id.startsWith("grpc-")) stats.grpc_streams += 1;
	}
	return stats;
}
