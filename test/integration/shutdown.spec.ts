import { connect, type Socket } from "node:net";
import { freePort, spawnGateway } from "../support/processes";
import { tempDir } from "../support/harness";

function rawRequest(port: number, head: string): Promise<Socket> {
	return new Promise((resolve, reject) => {
		const socket = connect(port, "127.0.0.1", () => {
			socket.write(head);
			resolve(socket);
		});
		socket.once("error", reject);
	});
}

function readResponse(socket: Socket): Promise<string> {
	return new Promise((resolve) => {
		let text = "";
		socket.on("data", (chunk) => (text += chunk.toString()));
		socket.on("close", () => resolve(text));
	});
}

describe("graceful shutdown of a real process", () => {
	it.each(["SIGTERM", "SIGINT", "SIGHUP"] as const)("on %s: refuses new connections, finishes the request in flight, exits 0", async (signal) => {
		const port = await freePort();
		const gateway = spawnGateway("embedded", { DATA_DIR: tempDir(), PORT: String(port), GRPC_PORT: "0", HOST: "127.0.0.1" });
		try {
			await gateway.waitForOutput(/ready at http:\/\/127\.0\.0\.1:\d+/);
			// A request whose body is still arriving when the signal comes.
			const body = JSON.stringify({ update_id: 1 });
			const socket = await rawRequest(
				port,
				`POST /api/v1/telegram/webhook/${"a".repeat(64)} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\nConnection: close\r\n\r\n${body.slice(0, 5)}`,
			);
			const response = readResponse(socket);
			gateway.kill(signal);
			await gateway.waitForOutput(new RegExp(`${signal} received`));
			await new Promise((r) => setTimeout(r, 200));
			await expect(rawRequest(port, "GET /health HTTP/1.1\r\nHost: x\r\n\r\n")).rejects.toMatchObject({ code: "ECONNREFUSED" });
			socket.write(body.slice(5));
			// Answered in full (no bot has this webhook path), not cut off by the shutdown.
			expect(await response).toMatch(/^HTTP\/1\.1 404 [\s\S]*Webhook not found/);
			expect(await gateway.exited).toEqual({ code: 0, signal: null });
			expect(gateway.output()).toMatch(/stopped cleanly/);
		} finally {
			gateway.kill("SIGKILL");
		}
	});

	it("a signal before the services started (waiting for the schema to be migrated) exits 0 at once", async () => {
		const gateway = spawnGateway("embedded", { DATA_DIR: tempDir(), PORT: String(await freePort()), GRPC_PORT: "0", HOST: "127.0.0.1", MIGRATE_ON_START: "false" });
		try {
			await gateway.waitForOutput(/MIGRATE_ON_START=false: not ready until/);
			gateway.kill("SIGTERM");
			expect(await gateway.exited).toEqual({ code: 0, signal: null });
			expect(gateway.output()).toMatch(/SIGTERM received before the services started: exiting/);
		} finally {
			gateway.kill("SIGKILL");
		}
	});

	it("a signal as the migrations end and the services start: they finish starting, then the node drains and exits 0", async () => {
		for (let round = 0; round < 3; round++) {
			const gateway = spawnGateway("embedded", { DATA_DIR: tempDir(), PORT: String(await freePort()), GRPC_PORT: "0", HOST: "127.0.0.1" });
			try {
				await gateway.waitForOutput(/Applied migrations/);
				gateway.kill("SIGTERM");
				expect(await gateway.exited).toEqual({ code: 0, signal: null });
				expect(gateway.output()).not.toMatch(/failed to start|Unable to start/);
			} finally {
				gateway.kill("SIGKILL");
			}
		}
	}, 60_000);

	it("a second embedded gateway on a running one's DATA_DIR refuses to start (exit 1, naming it); one on a crashed one's starts at once", async () => {
		const dataDir = tempDir();
		const env = { DATA_DIR: dataDir, GRPC_PORT: "0", HOST: "127.0.0.1" };
		const first = spawnGateway("first", { ...env, PORT: String(await freePort()) });
		let second: ReturnType<typeof spawnGateway> | undefined;
		try {
			await first.waitForOutput(/ready at http/);
			second = spawnGateway("second", { ...env, PORT: String(await freePort()) });
			expect(await second.exited).toEqual({ code: 1, signal: null });
			expect(second.output()).toMatch(/another gateway \(.+ pid \d+\) runs on this database .*: run one embedded gateway per DATA_DIR/);
			expect(first.child.exitCode).toBeNull();
			first.kill("SIGKILL");
			await first.exited;
			const started = Date.now();
			const third = spawnGateway("third", { ...env, PORT: String(await freePort()) });
			try {
				await third.waitForOutput(/ready at http/);
				expect(Date.now() - started).toBeLessThan(10_000);
				expect(third.output()).not.toMatch(/Another gateway/);
			} finally {
				third.kill("SIGKILL");
			}
		} finally {
			first.kill("SIGKILL");
			second?.kill("SIGKILL");
		}
	}, 60_000);

	it("a second signal while draining exits at once with 1 (Ctrl-C twice), not after the drain", async () => {
		const port = await freePort();
		const gateway = spawnGateway("embedded", { DATA_DIR: tempDir(), PORT: String(port), GRPC_PORT: "0", HOST: "127.0.0.1" });
		try {
			await gateway.waitForOutput(/ready at http:\/\/127\.0\.0\.1:\d+/);
			// A request that never finishes keeps the drain waiting (up to 10 s).
			const socket = await rawRequest(port, `POST /api/v1/telegram/webhook/${"a".repeat(64)} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{`);
			const started = Date.now();
			gateway.kill("SIGTERM");
			await gateway.waitForOutput(/SIGTERM received/);
			// A second later: within a second it would be the same signal delivered twice (next test).
			await new Promise((r) => setTimeout(r, 1_100));
			gateway.kill("SIGINT");
			expect(await gateway.exited).toEqual({ code: 1, signal: null });
			expect(Date.now() - started).toBeLessThan(5_000);
			expect(gateway.output()).toMatch(/SIGINT again while draining: exiting now/);
			socket.destroy();
		} finally {
			gateway.kill("SIGKILL");
		}
	});

	it("one Ctrl-C under `npm start` (SIGINT twice at once: the terminal's, and npm's passing it on) drains and exits 0", async () => {
		const port = await freePort();
		const gateway = spawnGateway("embedded", { DATA_DIR: tempDir(), PORT: String(port), GRPC_PORT: "0", HOST: "127.0.0.1" });
		try {
			await gateway.waitForOutput(/ready at http:\/\/127\.0\.0\.1:\d+/);
			gateway.kill("SIGINT");
			// npm's copy comes a few milliseconds after node took the first (the probe saw 7-40 ms).
			await gateway.waitForOutput(/SIGINT received/);
			gateway.kill("SIGINT");
			expect(await gateway.exited).toEqual({ code: 0, signal: null });
			expect(gateway.output()).toMatch(/stopped cleanly/);
			expect(gateway.output()).not.toMatch(/again while draining/);
		} finally {
			gateway.kill("SIGKILL");
		}
	});
});
