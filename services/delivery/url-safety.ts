/**
 * Outbound safety for webhook URLs: http(s) only, no credentials in the URL, and no address on
 * loopback, private, link-local (cloud metadata lives there), carrier-grade NAT, multicast or other
 * reserved ranges unless WEBHOOK_ALLOW_PRIVATE=true. Checked when a webhook is saved and again at
 * every connection (the lookup below is undici's), since DNS can change between the two. Names are
 * resolved through host-lookup.ts, which keeps slow resolvers from taking the thread pool.
 */
import type { LookupAddress } from "node:dns";
import { BlockList, isIP } from "node:net";
import { fail } from "../../lib/errors";
import { LOOKUP_BUSY, webhookHosts, type HostLookup } from "./host-lookup";

const blocked = new BlockList();
for (const [network, prefix] of [
	["0.0.0.0", 8],
	["10.0.0.0", 8],
	["100.64.0.0", 10],
	["127.0.0.0", 8],
	["169.254.0.0", 16],
	["172.16.0.0", 12],
	["192.0.0.0", 24],
	["192.0.2.0", 24],
	["192.168.0.0", 16],
	["198.18.0.0", 15],
	["198.51.100.0", 24],
	["203.0.113.0", 24],
	["224.0.0.0", 4],
	["240.0.0.0", 4],
] as const) {
	blocked.addSubnet(network, prefix, "ipv4");
	// The same range inside 6to4 (2002:AABB:CCDD::/48 carries the IPv4 address AA.BB.CC.DD).
	const [a, b, c, d] = network.split(".").map(Number) as [number, number, number, number];
	const hex = (high: number, low: number) => ((high << 8) | low).toString(16);
	blocked.addSubnet(`2002:${hex(a, b)}:${hex(c, d)}::`, 16 + prefix, "ipv6");
}
for (const [network, prefix] of [
	// The unspecified address, loopback, and the deprecated IPv4-compatible form (::127.0.0.1).
	["::", 96],
	["64:ff9b::", 96],
	// Local-use NAT64 (RFC 8215) and IPv4-translated addresses (::ffff:0:a.b.c.d, RFC 2765).
	["64:ff9b:1::", 48],
	["::ffff:0:0:0", 96],
	["100::", 64],
	// Teredo: tunnels to an IPv4 address hidden (obfuscated) in the IPv6 one.
	["2001::", 32],
	["2001:db8::", 32],
	["fc00::", 7],
	["fe80::", 10],
	// Site-local, deprecated (RFC 3879) but still routed inside some networks.
	["fec0::", 10],
	["ff00::", 8],
] as const) {
	blocked.addSubnet(network, prefix, "ipv6");
}

/** True for addresses a webhook must not reach (IPv4-mapped IPv6 is judged by its IPv4 part). */
export function isPrivateAddress(address: string): boolean {
	const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
	if (mapped) return blocked.check(mapped[1]!, "ipv4");
	const family = isIP(address);
	if (family === 4) return blocked.check(address, "ipv4");
	if (family === 6) return blocked.check(address, "ipv6");
	return true;
}

/** Syntax checks: a URL a webhook may have. Throws a 400 naming `url`. */
export function parseWebhookUrl(raw: string): URL {
	let url: URL;
	try {
		url = new URL(raw);
	} catch {
		throw fail.validation([{ field: "url", message: "The 'url' field must be an absolute http(s) URL." }]);
	}
	if (url.protocol !== "https:" && url.protocol !== "http:") {
		throw fail.validation([{ field: "url", message: "The 'url' field must use http or https." }]);
	}
	if (url.username || url.password) throw fail.validation([{ field: "url", message: "The 'url' field must not carry credentials." }]);
	return url;
}

/** Resolves the URL's host and refuses it (400 naming `url`) when any address is private. */
export async function assertPublicUrl(url: URL, allowPrivate: boolean, hosts: HostLookup = webhookHosts): Promise<void> {
	if (allowPrivate) return;
	const host = url.hostname.replace(/^\[|\]$/g, "");
	let addresses: string[];
	if (isIP(host)) addresses = [host];
	else {
		try {
			addresses = (await hosts.resolve(host)).map((a) => a.address);
		} catch (err) {
			if ((err as { code?: unknown }).code === LOOKUP_BUSY) throw fail.unavailable("Name resolution", 1);
			throw fail.validation([{ field: "url", message: `The host '${host.slice(0, 100)}' does not resolve.` }]);
		}
	}
	if (addresses.length === 0 || addresses.some(isPrivateAddress)) {
		throw fail.validation([{ field: "url", message: "The 'url' field points to a private, loopback or link-local address." }]);
	}
}

type LookupCallback = (err: NodeJS.ErrnoException | null, address: string | LookupAddress[], family?: number) => void;

/**
 * A dns.lookup for undici's connector that refuses private addresses at connection time, so a
 * name that resolved to a public address when the webhook was saved cannot be pointed inward later.
 */
export function safeLookup(allowPrivate: boolean, hosts: HostLookup = webhookHosts) {
	return (hostname: string, options: { all?: boolean; family?: number }, callback: LookupCallback): void => {
		hosts.resolve(hostname).then((addresses) => {
			const list = options.family === 4 || options.family === 6 ? addresses.filter((a) => a.family === options.family) : addresses;
			const bad = !allowPrivate && list.some((a) => isPrivateAddress(a.address));
			if (bad || list.length === 0) {
				const refusal = Object.assign(new Error(`address of ${hostname} is not allowed for webhooks`), { code: "EADDRNOTALLOWED" });
				return callback(refusal, []);
			}
			if (options.all) return callback(null, list);
			callback(null, list[0]!.address, list[0]!.family);
		}, (err: NodeJS.ErrnoException) => callback(err, []));
	};
}
