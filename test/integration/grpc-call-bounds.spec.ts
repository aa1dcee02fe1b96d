/**
 * services/grpc/call-bounds.ts against a raw HTTP/2 client, on a grpc-js server with the gateway's
 * health service: a call whose request message never comes is ended, and the calls anyone may make
 * without a credential (here health Watch streams) are capped on the node.
 */
import { connect, type ClientHttp2Session, type ClientHttp2Stream } from "node:http2";
import { Server, ServerCredentials, status as GrpcStatus } from "@grpc/grpc-js";
import { callBounds } from "../../services/grpc/call-bounds";
import { GatewayHealth } from "../../services/grpc/health";

const EMPTY_MESSAGE = Buffer.from([0, 0, 0, 0, 0]);

function call(session: ClientHttp2Session, path: string): { stream: ClientHttp2Stream; status: Promise<number> } {
	const stream = session.request({ ":method": "POST", ":path": path, "content-type": "application/grpc", te: "trailers" }, { endStream: false });
	const status = new Promise<number>((resolve) => {
		// A trailers-only answer carries grpc-status in its headers; otherwise the trailers do.
		stream.on("response", (headers) => headers["grpc-status"] !== undefined && resolve(Number(headers["grpc-status"])));
		stream.on("trailers", (trailers) => resolve(Number(trailers["grpc-status"])));
		stream.on("close", () => resolve(-1));
	});
	stream.on("data", () => undefined);
	stream.on("error", () => undefined);
	return { stream, status };
}

const stillOpen = (status: Promise<number>, ms: number) => Promise.race([status, new Promise<string>((resolve) => setTimeout(() => resolve("open"), ms))]);

describe("gRPC call bounds", () => {
	let server: Server;
	let session: ClientHttp2Session;

	beforeAll(async () => {
		server = new Server({ interceptors: [callBounds({ withoutCredentials: () => true, messageWaitMs: 300, maxOpenWithoutCredentials: 3 })] });
		new GatewayHealth([""]).addToServer(server);
		const port = await new Promise<number>((resolve, reject) => server.bindAsync("127.0.0.1:0", ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))));
		session = connect(`http://127.0.0.1:${port}`);
		// The server's shutdown at the end cancels the session: not an error of whatever test runs next.
		session.on("error", () => undefined);
	});
	afterAll(async () => {
		await new Promise<void>((resolve) => {
			session.once("close", () => resolve());
			session.destroy();
		});
		server.forceShutdown();
	});

	it("a call whose request message does not come is ended with DEADLINE_EXCEEDED; one whose message comes is answered", async () => {
		const silent = call(session, "/grpc.health.v1.Health/Check");
		expect(await stillOpen(silent.status, 2_000)).toBe(GrpcStatus.DEADLINE_EXCEEDED);
		const asked = call(session, "/grpc.health.v1.Health/Check");
		asked.stream.end(EMPTY_MESSAGE);
		expect(await asked.status).toBe(GrpcStatus.OK);
	});

	it("calls without credentials are capped on the node (RESOURCE_EXHAUSTED past it); a closed one frees its place", async () => {
		const watches = [0, 1, 2].map(() => call(session, "/grpc.health.v1.Health/Watch"));
		for (const watch of watches) watch.stream.write(EMPTY_MESSAGE);
		// Open past the message wait: a stream with its message stays.
		for (const watch of watches) expect(await stillOpen(watch.status, 500)).toBe("open");
		const refused = call(session, "/grpc.health.v1.Health/Watch");
		refused.stream.write(EMPTY_MESSAGE);
		expect(await stillOpen(refused.status, 2_000)).toBe(GrpcStatus.RESOURCE_EXHAUSTED);
		watches[0]!.stream.close();
		await watches[0]!.status;
		const admitted = call(session, "/grpc.health.v1.Health/Watch");
		admitted.stream.write(EMPTY_MESSAGE);
		expect(await stillOpen(admitted.status, 500)).toBe("open");
		for (const watch of [...watches.slice(1), admitted]) watch.stream.close();
	});
});
