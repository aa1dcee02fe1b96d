/**
 * Each ingest node polls its share of the polling bots (services/ingest/poller-share.ts): about
 * ceil(bots / nodes) each, a stable choice of which, handed over a few per scan when a node joins,
 * taken over when one leaves, and never a bot left unpolled for long.
 */
import { homeOf, ORPHAN_AFTER_MS, PollerShare, planPollers, rankBots, SHED_EVERY_MS, SHED_PAUSE_AFTER_ORPHAN_MS, type PollerScan } from "../../services/ingest/poller-share";

const SCAN_MS = 5_000;
const range = (n: number, from = 1) => Array.from({ length: n }, (_, i) => from + i);

/**
 * Ingest nodes scanning in turn over one lease table (bot -> node), as the service does: what a plan
 * takes is taken if still free, what it sheds is freed, orphans taken pause shedding everywhere.
 * `down` nodes are counted in the share and do nothing.
 */
class Cluster {
	readonly leases = new Map<number, string>();
	readonly shares = new Map<string, PollerShare>();
	readonly down = new Set<string>();
	now = 0;
	moves = 0;
	shedPausedUntil = 0;

	constructor(
		public bots: number[],
		public nodes: string[],
	) {}

	held(node: string): number[] {
		return this.bots.filter((id) => this.leases.get(id) === node);
	}

	scan(node: string) {
		const share = this.shares.get(node) ?? new PollerShare();
		this.shares.set(node, share);
		const scan: PollerScan = {
			self: node,
			nodes: this.nodes,
			bots: this.bots,
			running: new Set(this.held(node)),
			free: new Set(this.bots.filter((id) => !this.leases.has(id))),
			shedPaused: this.now < this.shedPausedUntil,
		};
		const plan = share.plan(scan, this.now);
		if (plan.orphans.length > 0) this.shedPausedUntil = this.now + SHED_PAUSE_AFTER_ORPHAN_MS;
		for (const id of plan.shed) this.leases.delete(id);
		for (const id of plan.take) {
			if (this.leases.has(id)) continue;
			this.leases.set(id, node);
			this.moves++;
		}
		return plan;
	}

	/** One scan interval: every live node scans once. */
	round() {
		const plans = new Map(this.nodes.filter((node) => !this.down.has(node)).map((node) => [node, this.scan(node)]));
		this.now += SCAN_MS;
		return plans;
	}

	settle(rounds = 20) {
		for (let i = 0; i < rounds; i++) this.round();
	}

	counts(): number[] {
		return this.nodes.map((node) => this.held(node).length);
	}
}

describe("planPollers", () => {
	it("one ingest node polls every bot, as before the share", () => {
		const bots = range(500);
		const plan = planPollers({ self: "a", nodes: ["a"], bots, running: new Set(), free: new Set(bots) });
		expect(plan.share).toBe(500);
		expect(plan.take.sort((x, y) => x - y)).toEqual(bots);
		expect(plan.shed).toEqual([]);
		// Embedded mode lists no node until the service has started: the node counts itself.
		expect(planPollers({ self: "a", nodes: [], bots, running: new Set(), free: new Set(bots) }).take).toHaveLength(500);
	});

	it("takes free bots up to its share, the most preferred first, and never one another node holds", () => {
		const bots = range(100);
		const free = new Set(bots.filter((id) => id % 3 !== 0));
		const plan = planPollers({ self: "a", nodes: ["a", "b"], bots, running: new Set([3, 6]), free });
		expect(plan.share).toBe(50);
		expect(plan.take).toHaveLength(48);
		expect(plan.take.every((id) => free.has(id))).toBe(true);
		const ranked = rankBots("a", ["a", "b"], bots).filter((id) => free.has(id));
		expect(plan.take).toEqual(ranked.slice(0, 48));
	});

	it("hands back only past the slack, a few per scan, the least preferred first, never below the share", () => {
		const bots = range(500);
		const nodes = ["a", "b"];
		const scan = (running: number[]): ReturnType<typeof planPollers> => planPollers({ self: "a", nodes, bots, running: new Set(running), free: new Set() });
		const ranked = rankBots("a", nodes, bots);
		// Share 250, slack 25: 275 is kept.
		expect(scan(ranked.slice(0, 275)).shed).toEqual([]);
		const over = scan(ranked.slice(0, 276));
		expect(over.shed).toEqual(ranked.slice(250, 276).reverse());
		// All 500: at most a quarter of the share per scan.
		const all = scan(ranked);
		expect(all.shed).toHaveLength(63);
		expect(all.shed).toEqual(ranked.slice(437).reverse());
		expect(all.take).toEqual([]);
		// Not while a lease is free (the last ones handed back, not taken yet), nor while paused.
		expect(planPollers({ self: "a", nodes, bots, running: new Set(ranked.slice(0, 490)), free: new Set(ranked.slice(490)) }).shed).toEqual([]);
		expect(planPollers({ self: "a", nodes, bots, running: new Set(ranked), free: new Set(), shedPaused: true }).shed).toEqual([]);
	});

	it("no bots: nothing to take or hand back", () => {
		expect(planPollers({ self: "a", nodes: ["a", "b"], bots: [], running: new Set(), free: new Set() })).toMatchObject({ share: 0, take: [], shed: [] });
	});
});

describe("rankBots", () => {
	it("is the same on every call, and every bot has exactly one home among the nodes", () => {
		const bots = range(300);
		const nodes = ["worker-1", "worker-2", "worker-3"];
		expect(rankBots("worker-1", nodes, bots)).toEqual(rankBots("worker-1", [...nodes].reverse(), [...bots].reverse()));
		const homes = nodes.map((node) => bots.filter((id) => homeOf(nodes, id) === node));
		expect(homes.reduce((sum, home) => sum + home.length, 0)).toBe(300);
		for (const home of homes) expect(home.length).toBeGreaterThan(70);
		// Its home bots come first in a node's ranking.
		expect(rankBots("worker-2", nodes, bots).slice(0, homes[1]!.length).sort((x, y) => x - y)).toEqual(homes[1]);
	});

	it("a node joining takes the home of some bots from each node, and moves no other bot's home", () => {
		const bots = range(600);
		const before = ["a", "b", "c"];
		const after = [...before, "d"];
		const moved = bots.filter((id) => homeOf(before, id) !== homeOf(after, id));
		expect(moved.every((id) => homeOf(after, id) === "d")).toBe(true);
		for (const node of before) expect(moved.some((id) => homeOf(before, id) === node)).toBe(true);
		expect(moved.length).toBeGreaterThan(100);
		expect(moved.length).toBeLessThan(200);
	});
});

describe("the share over successive scans", () => {
	it.each([1, 2, 3])("%i node(s) starting together: every bot polled once, each node within its share", (n) => {
		const cluster = new Cluster(range(500), range(n).map((i) => `worker-${i}`));
		cluster.settle();
		const share = Math.ceil(500 / n);
		expect(cluster.leases.size).toBe(500);
		for (const count of cluster.counts()) {
			expect(count).toBeLessThanOrEqual(share);
			expect(count).toBeGreaterThan(0);
		}
		// Settled: the scans move nothing any more.
		const moves = cluster.moves;
		cluster.settle(5);
		expect(cluster.moves).toBe(moves);
	});

	it("a node joining a node that polls everything: handed over gradually, then roughly half each, nothing moved twice", () => {
		const cluster = new Cluster(range(40), ["worker-1"]);
		cluster.settle(2);
		expect(cluster.counts()).toEqual([40]);
		cluster.nodes = ["worker-1", "worker-2"];
		const firstMoves = cluster.moves;
		const handed: number[] = [];
		for (let i = 0; i < 8; i++) {
			const before = cluster.held("worker-1").length;
			const plan = cluster.round().get("worker-1")!;
			handed.push(plan.shed.length);
			expect(before - cluster.held("worker-1").length).toBeLessThanOrEqual(5);
		}
		expect(handed.filter((n) => n > 0).length).toBeGreaterThanOrEqual(4);
		const [one, two] = cluster.counts() as [number, number];
		expect(one + two).toBe(40);
		expect(one).toBeGreaterThanOrEqual(20);
		expect(one).toBeLessThanOrEqual(22);
		expect(two).toBeGreaterThanOrEqual(18);
		// Each bot moved at most once: only the ones worker-2 took.
		expect(cluster.moves - firstMoves).toBe(two);
	});

	it("a node leaving: its bots are taken by the others, whose own bots stay where they are", () => {
		const cluster = new Cluster(range(300), ["a", "b", "c"]);
		cluster.settle();
		const kept = new Map([...cluster.leases].filter(([, node]) => node !== "c"));
		for (const id of cluster.held("c")) cluster.leases.delete(id); // its leases released (or expired)
		cluster.nodes = ["a", "b"];
		cluster.settle(3);
		expect(cluster.leases.size).toBe(300);
		for (const [id, node] of kept) expect(cluster.leases.get(id)).toBe(node);
		for (const count of cluster.counts().slice(0, 2)) expect(count).toBeLessThanOrEqual(150);
	});

	it("a node counted in the share that takes nothing: its part is taken by the others after a while, and not handed to and fro", () => {
		const cluster = new Cluster(range(90), ["a", "b", "c"]);
		cluster.down.add("c");
		cluster.round();
		expect(cluster.leases.size).toBe(60);
		const rounds = Math.ceil(ORPHAN_AFTER_MS / SCAN_MS) + 1;
		cluster.settle(rounds);
		expect(cluster.leases.size).toBe(90);
		// Then steady: no handing back while the orphans would only be orphans again.
		const moves = cluster.moves;
		expect(cluster.shedPausedUntil).toBeGreaterThan(cluster.now);
		while (cluster.now < cluster.shedPausedUntil) cluster.round();
		expect(cluster.moves).toBe(moves);
		expect(cluster.leases.size).toBe(90);
		// After the pause a few are handed back (a quarter of the share), left free for a while, and
		// taken again: that many per pause, no more.
		let fewest = 90;
		for (let i = 0; i < SHED_PAUSE_AFTER_ORPHAN_MS / SCAN_MS; i++) {
			cluster.round();
			fewest = Math.min(fewest, cluster.leases.size);
		}
		expect(fewest).toBeGreaterThanOrEqual(90 - 8);
		expect(cluster.moves - moves).toBeLessThanOrEqual(8);
	});

	it("scans brought forward by events hand back no faster than one batch per SHED_EVERY_MS", () => {
		const share = new PollerShare();
		const bots = range(100);
		const running = new Set(bots);
		const scan = (): PollerScan => ({ self: "a", nodes: ["a", "b"], bots, running, free: new Set() });
		const shed = share.plan(scan(), 0).shed;
		expect(shed).toHaveLength(13);
		for (const id of shed) running.delete(id); // taken by the other node at once
		expect(share.plan(scan(), 100).shed).toEqual([]);
		expect(share.plan(scan(), SHED_EVERY_MS - 1).shed).toEqual([]);
		expect(share.plan(scan(), SHED_EVERY_MS).shed).toHaveLength(13);
	});

	it("an orphan is a bot free for two scans' time, not one just handed back", () => {
		const share = new PollerShare();
		const scan = (free: number[]): PollerScan => ({ self: "a", nodes: ["a", "b"], bots: range(4), running: new Set([1, 2]), free: new Set(free) });
		expect(share.plan(scan([3]), 0).take).toEqual([]);
		expect(share.plan(scan([3]), ORPHAN_AFTER_MS - 1).take).toEqual([]);
		expect(share.plan(scan([3]), ORPHAN_AFTER_MS)).toMatchObject({ take: [3], orphans: [3] });
		// Held meanwhile, then free again: its wait starts over.
		expect(share.plan(scan([]), ORPHAN_AFTER_MS + 1).take).toEqual([]);
		expect(share.plan(scan([3]), ORPHAN_AFTER_MS + 2).take).toEqual([]);
	});
});
