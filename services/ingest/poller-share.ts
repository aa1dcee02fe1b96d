/**
 * Which polling bots one ingest node polls. Each bot has one poller in the whole cluster (a lease);
 * without a share the first node to scan took every bot, so adding ingest nodes spread nothing. Now
 * each node polls about ceil(bots / ingest nodes): it takes free leases while under that share, and
 * past it by more than a slack it hands a few back per scan for the nodes under theirs to take.
 *
 * Which bots a node takes first and gives back last is ranked by rendezvous hashing of (node, bot):
 * every node agrees on each bot's "home" among the live ingest nodes, so the nodes mostly reach for
 * different bots, and a node joining or leaving moves only the bots it is home to.
 *
 * A bot left free for a while (a node counted in the share that does not take its part: its scans
 * fail, or it is dying) is taken by whoever sees it, past the share: an unpolled bot is worse than
 * an uneven spread. Then no node hands bots back for a while (the caller keeps that pause in the
 * shared state, for every node), or the two rules would pass bots to and fro.
 */
/** How far past its share a node may go before it hands bots back, as a part of the share (at least 1). */
export const SHARE_SLACK = 0.1;
/** The most a node hands back in one scan, as a part of the share (at least 1): gradually, not all at once. */
export const SHED_PER_SCAN = 0.25;
/**
 * The least time between two scans that hand bots back (a little under the scan interval): scans
 * that events bring forward (a node joined, a bot was added) do not make it faster.
 */
export const SHED_EVERY_MS = 4_000;
/** A lease free this long (two scans) has no node taking it within its share: anyone takes it. */
export const ORPHAN_AFTER_MS = 10_000;
/**
 * No node hands bots back for this long after one took an orphan: with a node that takes nothing
 * still counted, the bots handed back would be orphans again (each time unpolled for ORPHAN_AFTER_MS).
 */
export const SHED_PAUSE_AFTER_ORPHAN_MS = 300_000;

export interface PollerScan {
	/** This node's ID. */
	self: string;
	/** The nodes running ingest now (this one is counted whether listed or not). */
	nodes: readonly string[];
	/** Every active polling bot. */
	bots: readonly number[];
	/** The bots this node polls now. */
	running: ReadonlySet<number>;
	/** The bots whose lease nobody holds. */
	free: ReadonlySet<number>;
	/** Hand nothing back this time (a node took an orphan lately: SHED_PAUSE_AFTER_ORPHAN_MS). */
	shedPaused?: boolean;
}

export interface PollerPlan {
	/** The bots this node should poll: ceil(bots / nodes). */
	share: number;
	/** The most it keeps before handing bots back. */
	limit: number;
	/** Free bots to try to take, the most preferred first. */
	take: number[];
	/** Polled bots to hand back, the least preferred first. */
	shed: number[];
	/** Of `take`, the bots taken because they were left free (past the share): pause handing back. */
	orphans: number[];
}

/**
 * Rendezvous weight of a bot on a node: the same on every node, unrelated from bot to bot. FNV-1a,
 * then murmur3's finaliser so that near names (worker-1, worker-2; bots 41, 42) weigh apart: a scan
 * weighs every bot on every node, ten times faster than with a SHA-1.
 */
export function pollerWeight(node: string, botId: number): number {
	const key = `${node}\0${botId}`;
	let h = 0x811c9dc5;
	for (let i = 0; i < key.length; i++) h = Math.imul(h ^ key.charCodeAt(i), 0x01000193);
	h = Math.imul(h ^ (h >>> 16), 0x85ebca6b);
	h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
	return (h ^ (h >>> 16)) >>> 0;
}

/** The bot's home: the node where it weighs most (rendezvous hashing). */
export function homeOf(nodes: readonly string[], botId: number): string | undefined {
	let home: string | undefined;
	let most = -1;
	for (const node of nodes) {
		const weight = pollerWeight(node, botId);
		// A tie (1 in 4 billion) goes to the name that sorts first, so that every node agrees.
		if (weight > most || (weight === most && home !== undefined && node < home)) [home, most] = [node, weight];
	}
	return home;
}

/** The bots in this node's order of preference: those it is home to first, then by weight. */
export function rankBots(self: string, nodes: readonly string[], bots: readonly number[]): number[] {
	const all = [...new Set([...nodes, self])];
	const ranked = bots.map((id) => ({ id, weight: pollerWeight(self, id), home: homeOf(all, id) === self }));
	ranked.sort((a, b) => Number(b.home) - Number(a.home) || b.weight - a.weight);
	return ranked.map((bot) => bot.id);
}

/** The pure share: what to take and what to hand back, given this scan alone. */
export function planPollers(scan: PollerScan, orphans: ReadonlySet<number> = new Set()): PollerPlan {
	const nodes = [...new Set([...scan.nodes, scan.self])];
	const share = Math.ceil(scan.bots.length / nodes.length);
	const limit = share + Math.max(1, Math.ceil(share * SHARE_SLACK));
	const ranked = rankBots(scan.self, nodes, scan.bots);
	const mine = ranked.filter((id) => scan.running.has(id));
	const free = ranked.filter((id) => !scan.running.has(id) && scan.free.has(id));
	const withinShare = free.slice(0, Math.max(0, share - mine.length));
	const pastShare = free.slice(withinShare.length).filter((id) => orphans.has(id));
	// Down to the share, a few per scan, and only while no lease is free: bots free (those handed back
	// last time, not taken yet) say the others have not caught up, and handing more back would only
	// leave more unpolled meanwhile.
	const mayShed = !scan.shedPaused && scan.free.size === 0 && mine.length > limit;
	const shedCount = mayShed ? Math.min(mine.length - share, Math.max(1, Math.ceil(share * SHED_PER_SCAN))) : 0;
	return {
		share,
		limit,
		take: [...withinShare, ...pastShare],
		shed: mine.slice(mine.length - shedCount).reverse(),
		orphans: pastShare,
	};
}

/**
 * The share from scan to scan: remembers since when each bot has been seen free (to find orphans),
 * and when this node last handed bots back.
 */
export class PollerShare {
	private readonly freeSince = new Map<number, number>();
	private lastShedAt = Number.NEGATIVE_INFINITY;

	plan(scan: PollerScan, now: number): PollerPlan {
		for (const id of this.freeSince.keys()) if (!scan.free.has(id)) this.freeSince.delete(id);
		const orphans = new Set<number>();
		for (const id of scan.free) {
			const since = this.freeSince.get(id) ?? now;
			this.freeSince.set(id, since);
			if (now - since >= ORPHAN_AFTER_MS) orphans.add(id);
		}
		const plan = planPollers({ ...scan, shedPaused: scan.shedPaused || now - this.lastShedAt < SHED_EVERY_MS }, orphans);
		if (plan.shed.length > 0) this.lastShedAt = now;
		return plan;
	}
}
