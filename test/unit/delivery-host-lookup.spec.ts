/**
 * Webhook host lookups (services/delivery/host-lookup.ts): DNS is asked through c-ares (no thread of
 * the pool SQLite and argon2 use); getaddrinfo only for what DNS does not know, bounded, shared per
 * name, kept briefly, and refused when no turn comes in time. The resolvers here are functions whose
 * answers the test gives.
 */
import type { LookupAddress } from "node:dns";
import { HostLookup, LOOKUP_BUSY } from "../../services/delivery/host-lookup";
import { safeLookup } from "../../services/delivery/url-safety";

/** A resolver whose lookups wait until answered, counting those running at once. */
function heldResolver() {
	const pending: Array<{ hostname: string; answer(addresses: LookupAddress[]): void; fail(err: Error): void }> = [];
	let running = 0;
	let mostAtOnce = 0;
	const calls: string[] = [];
	const lookup = (hostname: string) =>
		new Promise<LookupAddress[]>((resolve, reject) => {
			calls.push(hostname);
			running += 1;
			mostAtOnce = Math.max(mostAtOnce, running);
			const settle = () => (running -= 1);
			pending.push({ hostname, answer: (a) => (settle(), resolve(a)), fail: (e) => (settle(), reject(e)) });
		});
	const answer = async (hostname: string, address = "203.0.113.7") => {
		await until(() => pending.some((p) => p.hostname === hostname));
		const i = pending.findIndex((p) => p.hostname === hostname);
		pending.splice(i, 1)[0]!.answer([{ address, family: 4 }]);
	};
	return { lookup, pending, calls, answer, mostAtOnce: () => mostAtOnce };
}

async function until(condition: () => boolean): Promise<void> {
	for (let i = 0; i < 200 && !condition(); i++) await new Promise((r) => setTimeout(r, 1));
	if (!condition()) throw new Error("condition not met");
}

/** DNS that knows no name: every ask goes on to the system's lookup. */
const notInDns = (hostname: string) => Promise.reject(Object.assign(new Error(`queryA ENOTFOUND ${hostname}`), { code: "ENOTFOUND" }));

const codeOf = (p: Promise<unknown>) => p.then(() => "resolved", (err: { code?: string }) => err.code);

describe("HostLookup", () => {
	it("runs at most `concurrent` lookups at once; the others start in order as those settle", async () => {
		const resolver = heldResolver();
		const hosts = new HostLookup({ concurrent: 2, queryDns: notInDns, systemLookup: resolver.lookup });
		const answers = ["a.example", "b.example", "c.example", "d.example"].map((h) => hosts.resolve(h));
		await until(() => resolver.calls.length === 2);
		expect(resolver.calls).toEqual(["a.example", "b.example"]);
		await resolver.answer("b.example");
		await until(() => resolver.calls.length === 3);
		expect(resolver.calls[2]).toBe("c.example");
		for (const h of ["a.example", "c.example", "d.example"]) await resolver.answer(h);
		expect((await Promise.all(answers)).map((a) => a[0]!.address)).toEqual(Array(4).fill("203.0.113.7"));
		expect(resolver.mostAtOnce()).toBe(2);
	});

	it("shares one lookup among asks for one name, and keeps the answer for ttlMs", async () => {
		const resolver = heldResolver();
		const hosts = new HostLookup({ concurrent: 1, ttlMs: 50, queryDns: notInDns, systemLookup: resolver.lookup });
		const asks = Array.from({ length: 10 }, () => hosts.resolve("same.example"));
		await resolver.answer("same.example");
		await Promise.all(asks);
		await hosts.resolve("same.example");
		expect(resolver.calls).toEqual(["same.example"]);
		await new Promise((r) => setTimeout(r, 80));
		const again = hosts.resolve("same.example");
		await resolver.answer("same.example", "203.0.113.8");
		expect((await again)[0]!.address).toBe("203.0.113.8");
		expect(resolver.calls).toHaveLength(2);
	});

	it("keeps a failure for failureTtlMs: a name that does not resolve is not asked again at once", async () => {
		const resolver = heldResolver();
		const hosts = new HostLookup({ failureTtlMs: 1_000, queryDns: notInDns, systemLookup: resolver.lookup });
		const first = codeOf(hosts.resolve("missing.example"));
		await until(() => resolver.pending.length === 1);
		resolver.pending.pop()!.fail(Object.assign(new Error("getaddrinfo ENOTFOUND"), { code: "ENOTFOUND" }));
		expect(await first).toBe("ENOTFOUND");
		expect(await codeOf(hosts.resolve("missing.example"))).toBe("ENOTFOUND");
		expect(resolver.calls).toHaveLength(1);
	});

	it("refuses an ask busy when no lookup could start within waitMs, and never runs it", async () => {
		const resolver = heldResolver();
		const hosts = new HostLookup({ concurrent: 1, waitMs: 30, queryDns: notInDns, systemLookup: resolver.lookup });
		const slow = hosts.resolve("slow.example");
		expect(await codeOf(hosts.resolve("waits.example"))).toBe(LOOKUP_BUSY);
		await resolver.answer("slow.example");
		await slow;
		expect(resolver.calls).toEqual(["slow.example"]);
		// A busy refusal is not kept: the next ask looks the name up.
		const later = hosts.resolve("waits.example");
		await resolver.answer("waits.example");
		expect((await later)[0]!.address).toBe("203.0.113.7");
	});

	it("refuses at once past maxWaiting", async () => {
		const resolver = heldResolver();
		const hosts = new HostLookup({ concurrent: 1, maxWaiting: 2, queryDns: notInDns, systemLookup: resolver.lookup });
		const asks = ["1.example", "2.example", "3.example", "4.example"].map((h) => codeOf(hosts.resolve(h)));
		expect(await asks[3]).toBe(LOOKUP_BUSY);
		for (const h of ["1.example", "2.example", "3.example"]) await resolver.answer(h);
		expect(await Promise.all(asks.slice(0, 3))).toEqual(["resolved", "resolved", "resolved"]);
	});
});

describe("HostLookup: DNS first, the system's lookup after", () => {
	const dnsAnswer = (address: string) => () => Promise.resolve<LookupAddress[]>([{ address, family: 4 }]);
	const dnsFails = (code: string) => () => Promise.reject(Object.assign(new Error(`queryA ${code}`), { code }));

	it("takes DNS's answer and never asks the system", async () => {
		const system = jest.fn(() => Promise.resolve<LookupAddress[]>([{ address: "8.8.8.8", family: 4 }]));
		const hosts = new HostLookup({ queryDns: dnsAnswer("1.1.1.1"), systemLookup: system });
		expect(await hosts.resolve("public.example")).toEqual([{ address: "1.1.1.1", family: 4 }]);
		expect(system).not.toHaveBeenCalled();
	});

	it("asks the system for a name DNS does not know (it may be in /etc/hosts)", async () => {
		const system = jest.fn(() => Promise.resolve<LookupAddress[]>([{ address: "10.1.2.3", family: 4 }]));
		const hosts = new HostLookup({ queryDns: dnsFails("ENOTFOUND"), systemLookup: system });
		expect(await hosts.resolve("intranet")).toEqual([{ address: "10.1.2.3", family: 4 }]);
		expect(system).toHaveBeenCalledWith("intranet");
	});

	it("does not ask the system after a DNS timeout: getaddrinfo would wait on the same silent server with a thread", async () => {
		const system = jest.fn(() => Promise.resolve<LookupAddress[]>([]));
		const hosts = new HostLookup({ queryDns: dnsFails("ETIMEOUT"), systemLookup: system });
		expect(await codeOf(hosts.resolve("silent.example"))).toBe("ETIMEOUT");
		expect(system).not.toHaveBeenCalled();
	});

	it("answers localhost names from the system without asking DNS", async () => {
		const dns = jest.fn(dnsAnswer("1.1.1.1"));
		const hosts = new HostLookup({ queryDns: dns, systemLookup: () => Promise.resolve<LookupAddress[]>([{ address: "127.0.0.1", family: 4 }]) });
		expect(await hosts.resolve("localhost")).toEqual([{ address: "127.0.0.1", family: 4 }]);
		expect(await hosts.resolve("api.LOCALHOST")).toEqual([{ address: "127.0.0.1", family: 4 }]);
		expect(dns).not.toHaveBeenCalled();
	});
});

describe("safeLookup through HostLookup", () => {
	const lookupWith = (addresses: LookupAddress[], allowPrivate: boolean, options: { all?: boolean; family?: number }) =>
		new Promise<{ err: { code?: string } | null; address: unknown; family?: number }>((resolve) => {
			const hosts = new HostLookup({ queryDns: () => Promise.resolve(addresses), systemLookup: () => Promise.reject(new Error("not asked")) });
			safeLookup(allowPrivate, hosts)("host.example", options, (err, address, family) => resolve({ err, address, family }));
		});

	it("answers the first address, all of them, or those of the family asked for", async () => {
		const both: LookupAddress[] = [
			{ address: "2001:4860::8888", family: 6 },
			{ address: "8.8.4.4", family: 4 },
		];
		expect(await lookupWith(both, false, {})).toEqual({ err: null, address: "2001:4860::8888", family: 6 });
		expect(await lookupWith(both, false, { all: true })).toEqual({ err: null, address: both, family: undefined });
		expect(await lookupWith(both, false, { family: 4 })).toEqual({ err: null, address: "8.8.4.4", family: 4 });
	});

	it("refuses a name with any private address unless private addresses are allowed", async () => {
		const mixed: LookupAddress[] = [
			{ address: "8.8.4.4", family: 4 },
			{ address: "127.0.0.1", family: 4 },
		];
		expect((await lookupWith(mixed, false, {})).err?.code).toBe("EADDRNOTALLOWED");
		expect(await lookupWith(mixed, true, {})).toEqual({ err: null, address: "8.8.4.4", family: 4 });
	});
});
