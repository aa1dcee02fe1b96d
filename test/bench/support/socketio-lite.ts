/**
 * A minimal socket.io client for benchmarks: the engine.io v4 / socket.io v5 wire protocol over a
 * bare `ws` WebSocket (open, namespace connect with auth, ping/pong, emit with ack, events), so a
 * thousand subscribers cost the benchmark process little and distort the figures less than a
 * thousand full socket.io-client instances would. Tests use the real socket.io-client.
 */
import WebSocket from "ws";

export class LiteSocket {
	private ackId = 0;
	private readonly acks = new Map<number, (args: unknown[]) => void>();
	private readonly handlers = new Map<string, (payload: unknown) => void>();

	private constructor(private readonly ws: WebSocket) {
		ws.on("message", (data) => this.onPacket(data.toString()));
	}

	static connect(baseUrl: string, token: string): Promise<LiteSocket> {
		const ws = new WebSocket(`${baseUrl.replace(/^http/, "ws")}/socket.io/?EIO=4&transport=websocket`, { perMessageDeflate: false });
		const socket = new LiteSocket(ws);
		return new Promise((resolve, reject) => {
			ws.once("error", reject);
			socket.handlers.set("$open", () => ws.send(`40${JSON.stringify({ token })}`));
			socket.handlers.set("$connect", () => resolve(socket));
			socket.handlers.set("$connect_error", (payload) => reject(new Error(JSON.stringify(payload))));
		});
	}

	on(event: string, handler: (payload: unknown) => void): void {
		this.handlers.set(event, handler);
	}

	emitWithAck(event: string, payload: unknown): Promise<unknown> {
		const id = this.ackId++;
		return new Promise((resolve) => {
			this.acks.set(id, (args) => resolve(args[0]));
			this.ws.send(`42${id}${JSON.stringify([event, payload])}`);
		});
	}

	close(): void {
		this.ws.terminate();
	}

	private onPacket(text: string): void {
		const type = text[0];
		if (type === "0") return this.handlers.get("$open")?.(undefined);
		if (type === "2") return this.ws.send("3"); // engine.io ping -> pong
		if (type !== "4") return;
		const kind = text[1];
		const body = text.slice(2);
		if (kind === "0") return this.handlers.get("$connect")?.(undefined);
		if (kind === "4") return this.handlers.get("$connect_error")?.(JSON.parse(body));
		const start = body.search(/[[{]/);
		const id = start > 0 ? Number(body.slice(0, start)) : NaN;
		const args = JSON.parse(start >= 0 ? body.slice(start) : body) as unknown[];
		if (kind === "3") {
			this.acks.get(id)?.(args);
			this.acks.delete(id);
		} else if (kind === "2") {
			this.handlers.get(String(args[0]))?.(args[1]);
		}
	}
}
