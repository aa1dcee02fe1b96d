/**
 * What /ready reports on every node: the database, the transporter, the cacher and the shared state.
 * The api service answers it on its own port; nodes without api serve it from lib/ops-server.ts.
 */
import type { ServiceBroker } from "moleculer";
import type { Runtime } from "./runtime";

export type CheckState = "up" | "down" | "disabled";
export type ReadinessChecks = Record<"db" | "transporter" | "cacher" | "state", CheckState>;

const CHECK_TIMEOUT_MS = 2_000;

function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T> {
	let timer: NodeJS.Timeout | undefined;
	return Promise.race([
		promise,
		new Promise<never>((_, reject) => {
			timer = setTimeout(() => reject(new Error("timed out")), ms);
		}),
	]).finally(() => clearTimeout(timer));
}

async function probe(check: () => Promise<unknown>): Promise<CheckState> {
	try {
		await withTimeout(check(), CHECK_TIMEOUT_MS);
		return "up";
	} catch {
		return "down";
	}
}

interface TransitView {
	connected?: boolean;
	disconnecting?: boolean;
	/** The NATS transporter's connection (nats.js): flush() is a PING answered by the server's PONG. */
	tx?: { client?: { flush?(): Promise<void> } };
}

/**
 * Moleculer marks the transit disconnected only in its own graceful disconnect: a NATS server gone
 * away left it "connected" (and /ready 200) while every remote call failed. A round trip says.
 */
function transporterCheck(transit: TransitView | undefined): Promise<CheckState> {
	if (!transit) return Promise.resolve("disabled");
	if (!transit.connected || transit.disconnecting) return Promise.resolve("down");
	const client = transit.tx?.client;
	return typeof client?.flush === "function" ? probe(() => client.flush!()) : Promise.resolve("up");
}

export async function readinessChecks(broker: ServiceBroker, runtime: Runtime): Promise<ReadinessChecks> {
	const cacher = broker.cacher as { client?: { ping(): Promise<unknown> } } | undefined;
	const [db, transporter, cache, state] = await Promise.all([
		probe(() => runtime.db.ping(CHECK_TIMEOUT_MS)),
		transporterCheck(broker.transit as TransitView | undefined),
		cacher?.client ? probe(() => cacher.client!.ping()) : Promise.resolve<CheckState>("up"),
		runtime.state.kind === "redis" ? probe(() => runtime.state.ping()) : Promise.resolve<CheckState>("up"),
	]);
	return { db, transporter, cacher: cache, state };
}

export type NodePhase = "starting" | "serving" | "draining";

export function readinessReport(checks: ReadinessChecks, phase: NodePhase) {
	const down = phase !== "serving" || Object.values(checks).includes("down");
	const reason = phase === "starting" ? { reason: "starting" } : phase === "draining" ? { reason: "shutting_down" } : {};
	return { ok: !down, body: { status: down ? "unavailable" : "ok", ...reason, checks } };
}
