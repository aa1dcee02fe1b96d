/**
 * A store that cannot be reached at start stops the node with one line naming the variable to fix
 * and the address it points at, never the password in it.
 */
import { rmSync } from "node:fs";
import { createServer, type Socket } from "node:net";
import { loadConfig } from "../../lib/config";
import { openRuntime, storeAddress } from "../../lib/runtime";
import { tempDir } from "../support/harness";
import { freePort, spawnGateway } from "../support/processes";

describe("storeAddress", () => {
	it.each([
		["redis://:hunter2@redis.internal:6380/0", "redis.internal:6380"],
		["rediss://user:hunter2@10.0.0.5", "10.0.0.5:6379"],
		["mysql://gateway:hunter2@db.internal/gateway", "db.internal:3306"],
		["sqlite:/var/lib/tgw/gateway.sqlite", "sqlite:/var/lib/tgw/gateway.sqlite"],
	])("%s is %s", (url, address) => {
		expect(storeAddress(url)).toBe(address);
	});
});

describe("Redis unreachable at start", () => {
	const dataDir = tempDir("tgw-no-redis-");
	afterAll(() => rmSync(dataDir, { recursive: true, force: true }));

	it("openRuntime says REDIS_URL and host:port, without the password", async () => {
		const port = await freePort();
		const config = loadConfig({ DATA_DIR: dataDir, REDIS_URL: `redis://:hunter2@127.0.0.1:${port}` });
		const opened = openRuntime(config);
		await expect(opened).rejects.toThrow(new RegExp(`^Cannot reach Redis at 127\\.0\\.0\\.1:${port} \\(REDIS_URL\\): `));
		await expect(opened).rejects.not.toThrow(/hunter2/);
	});

	it("gives Redis up for good: no reconnect attempt after openRuntime has rejected", async () => {
		const port = await freePort();
		const config = loadConfig({ DATA_DIR: dataDir, REDIS_URL: `redis://127.0.0.1:${port}` });
		await expect(openRuntime(config)).rejects.toThrow(/Cannot reach Redis/);
		// Redis comes up on that port: a client left behind would connect within its 2 s retry delay.
		const accepted: Socket[] = [];
		const server = createServer((socket) => accepted.push(socket));
		await new Promise<void>((resolve) => server.listen(port, "127.0.0.1", resolve));
		try {
			await new Promise((resolve) => setTimeout(resolve, 3_000));
			expect(accepted).toHaveLength(0);
		} finally {
			for (const socket of accepted) socket.destroy();
			await new Promise((resolve) => server.close(resolve));
		}
	});

	it("the gateway exits 1 with that one line", async () => {
		const port = await freePort();
		const node = spawnGateway("no-redis", { DATA_DIR: dataDir, PORT: "0", REDIS_URL: `redis://:hunter2@127.0.0.1:${port}` });
		const { code } = await node.exited;
		expect(code).toBe(1);
		expect(node.output()).toContain(`Cannot reach Redis at 127.0.0.1:${port} (REDIS_URL): `);
		expect(node.output()).not.toContain("hunter2");
	}, 30_000);
});
