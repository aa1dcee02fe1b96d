/** What bin/gateway.ts and bin/repl.ts print when a node cannot start (lib/runtime.ts startFailure). */
import { createServer, type Server } from "node:net";
import { startFailure } from "../../lib/runtime";

function listenError(port: number, host: string): Promise<Error> {
	return new Promise((resolve) => {
		const server = createServer();
		server.once("error", resolve);
		server.listen(port, host, () => server.close(() => resolve(new Error("listened"))));
	});
}

describe("startFailure", () => {
	it("a port in use is one line naming the address, with what to change", async () => {
		const blocker: Server = createServer();
		await new Promise<void>((resolve) => blocker.listen(0, "127.0.0.1", resolve));
		const port = (blocker.address() as { port: number }).port;
		try {
			const line = startFailure(await listenError(port, "127.0.0.1"));
			expect(line).toBe(`listen EADDRINUSE: address already in use 127.0.0.1:${port} (another process listens there: choose another PORT / GRPC_PORT, or stop it)`);
		} finally {
			blocker.close();
		}
	});

	it("an unknown HOST name is one line saying so", async () => {
		expect(startFailure(await listenError(0, "no-such-host.invalid"))).toMatch(/^getaddrinfo (ENOTFOUND|EAI_AGAIN) no-such-host\.invalid/);
	});

	it("anything else (a bug) keeps its stack", () => {
		const bug = new TypeError("x is not a function");
		expect(startFailure(bug)).toBe(bug.stack);
		expect(startFailure("thrown string")).toBe("thrown string");
	});
});
