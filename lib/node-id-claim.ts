/**
 * One running process per NODE_ID in a cluster. Moleculer, hearing a second node announce its own
 * id, stops the node that was running first (broker.fatal, exit 1, no drain), while the newcomer
 * keeps running: a copied compose service or a scaled deployment with a fixed NODE_ID killed its
 * healthy predecessor. So a node holds its id as a lease in the shared state, taken before its
 * broker joins: a second process with the id waits for it and refuses to start if it stays held.
 * The previous run of a node restarted after a crash on the same host (a container restarted in
 * place) is recognised by its host and a pid that no longer runs (or is this process's own), and
 * its lease is taken over at once.
 */
import { hostname } from "node:os";
import { randomUUID } from "node:crypto";
import { sleep } from "./async";
import { processStanding } from "./local-process";
import type { SharedState } from "./state";

export const NODE_ID_LEASE_MS = 15_000;
/** Long enough for the lease of a previous run that stopped without releasing it to run out. */
const WAIT_MS = NODE_ID_LEASE_MS + 5_000;
const RETRY_MS = 1_000;

export class NodeIdTakenError extends Error {
	constructor(nodeId: string, holder: string | null) {
		super(
			`NODE_ID ${nodeId} is in use by another running node${holder ? ` (${holder.split("|")[0]})` : ""}: give each node its own NODE_ID, or leave it unset (<hostname>-<pid>)`,
		);
		this.name = "NodeIdTakenError";
	}
}

export interface NodeIdClaim {
	release(): Promise<void>;
}

export async function claimNodeId(
	state: SharedState,
	nodeId: string,
	options: { waitMs?: number; retryMs?: number; onWaiting?(holder: string | null): void } = {},
): Promise<NodeIdClaim> {
	const key = `node-id:${nodeId}`;
	// Who holds it, for the message of a process that finds it taken; the uuid makes it this run's own.
	const owner = `${hostname()} pid ${process.pid}|${randomUUID()}`;
	const deadline = Date.now() + (options.waitMs ?? WAIT_MS);
	let told = false;
	while (!(await state.acquireLease(key, owner, NODE_ID_LEASE_MS))) {
		const [holder] = await state.leaseHolders([key]);
		if (holder && isGoneRunOfThisHost(holder)) {
			await state.releaseLease(key, holder);
			continue;
		}
		if (Date.now() >= deadline) throw new NodeIdTakenError(nodeId, holder ?? null);
		if (!told) options.onWaiting?.(holder ?? null);
		told = true;
		await sleep(options.retryMs ?? RETRY_MS);
	}
	const renewal = setInterval(() => void state.renewLeases([key], owner, NODE_ID_LEASE_MS).catch(() => undefined), NODE_ID_LEASE_MS / 3);
	renewal.unref();
	return {
		async release() {
			clearInterval(renewal);
			await state.releaseLease(key, owner).catch(() => undefined);
		},
	};
}

/** A holder written by a process of this host that no longer runs (or whose pid this process now has). */
function isGoneRunOfThisHost(holder: string): boolean {
	const match = /^(.*) pid (\d+)\|/.exec(holder);
	return match !== null && processStanding(match[1]!, Number(match[2])) === "gone";
}
