/**
 * LIVE_CONNECTIONS_PER_NODE for socket.io sessions. An engine.io session holds memory from its
 * opening, before any credential is seen (that comes with the namespace's CONNECT, up to 10 s
 * later), so the node's cap applies to the sessions themselves: past it a new one is refused before
 * it is made, 503 with Retry-After as REST would answer, over HTTP (polling) or on the upgrade
 * (WebSocket). Requests of a session that exists (they carry its sid) always pass.
 */
import { ServerResponse, type IncomingMessage } from "node:http";
import type { Duplex } from "node:stream";
import { toApiError } from "../../lib/errors";
import { requestIdFor } from "../../lib/request-id";
import { nodeFull } from "../../mixins/event-stream.mixin";
import { sendError } from "../api/http";
import { clientError } from "./protocol";
import { refuseUpgrade } from "./ws-endpoint";

type EngineRequest = IncomingMessage & { _query?: { sid?: string } };
/** engine.io's response: a ServerResponse over HTTP, an object around the raw socket on an upgrade. */
type EngineResponse = ServerResponse | { socket: Duplex };

/** An engine.io middleware (`io.engine.use`) refusing new sessions while `engine` holds `limit`. */
export function sessionCap(engine: { clientsCount: number }, limit: number) {
	return (req: EngineRequest, res: EngineResponse, next: () => void): void => {
		if (req._query?.sid !== undefined || engine.clientsCount < limit) return next();
		const refusal = nodeFull(limit);
		if (!(res instanceof ServerResponse)) return refuseUpgrade(req, res.socket, 503, clientError(refusal), toApiError(refusal).retryAfter);
		res.setHeader("X-Request-ID", requestIdFor(req.headers["x-request-id"]));
		sendError(res, refusal);
	};
}
