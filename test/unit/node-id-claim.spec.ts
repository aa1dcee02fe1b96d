/**
 * One process per NODE_ID (lib/node-id-claim.ts): a second process with the id waits for the first
 * one's lease and refuses to start while it is held, instead of joining and making Moleculer stop
 * the node that was running first. A previous run of the node on this host that is gone (a
 * container restarted in place) does not hold it up.
 */
import { spawnSync } from "node:child_process";
import { hostname } from "node:os";
import { claimNodeId, NODE_ID_LEASE_MS, NodeIdTakenError } from "../../lib/node-id-claim";
import { createMemoryState } from "../../lib/state/memory";

/** What another process's claim leaves in the shared state. */
const holderOf = (host: string, pid: number) => `${host} pid ${pid}|00000000-0000-4000-8000-000000000000`;

describe("claimNodeId", () => {
	it("an id held by a running process (of this host, or of another) is waited for, then refused naming the holder", async () => {
		for (const holder of [holderOf(hostname(), process.ppid), holderOf("another-host", process.pid)]) {
			const state = createMemoryState();
			await state.acquireLease("node-id:worker", holder, NODE_ID_LEASE_MS);
			const waited: Array<string | null> = [];
			const started = Date.now();
			const second = claimNodeId(state, "worker", { waitMs: 300, retryMs: 50, onWaiting: (h) => waited.push(h) });
			await expect(second).rejects.toBeInstanceOf(NodeIdTakenError);
			await expect(second).rejects.toThrow(new RegExp(`NODE_ID worker is in use by another running node \\(${holder.split("|")[0]}\\): give each node its own NODE_ID`));
			expect(Date.now() - started).toBeGreaterThanOrEqual(300);
			expect(waited).toEqual([holder]);
			// Another id is free.
			await (await claimNodeId(state, "worker-2")).release();
		}
	});

	it("the lease of a gone run of this host (its pid no longer runs, or is this process's) is taken over at once", async () => {
		const exited = spawnSync(process.execPath, ["-e", "0"]).pid;
		for (const holder of [holderOf(hostname(), exited), holderOf(hostname(), process.pid)]) {
			const state = createMemoryState();
			await state.acquireLease("node-id:api-1", holder, NODE_ID_LEASE_MS);
			const claim = await claimNodeId(state, "api-1", { waitMs: 0, retryMs: 10 });
			expect((await state.leaseHolders(["node-id:api-1"]))[0]).toMatch(new RegExp(`^${hostname()} pid ${process.pid}\\|`));
			await claim.release();
		}
	});

	it("a claim waiting for an id gets it once the holder releases it, or once its lease runs out", async () => {
		let now = 1_000_000;
		const state = createMemoryState(() => now);
		const other = holderOf("another-host", 1);
		await state.acquireLease("node-id:api-1", other, NODE_ID_LEASE_MS);
		const waiting = claimNodeId(state, "api-1", { waitMs: 60_000, retryMs: 20 });
		await new Promise((r) => setTimeout(r, 60));
		await state.releaseLease("node-id:api-1", other);
		await (await waiting).release();

		await state.acquireLease("node-id:api-1", other, NODE_ID_LEASE_MS); // never renewed: its process died
		now += NODE_ID_LEASE_MS + 1;
		await (await claimNodeId(state, "api-1", { waitMs: 1_000, retryMs: 20 })).release();
	});
});
