/**
 * What per-address limits count by. An IPv4 address is one client; an IPv6 client is handed a whole
 * /64 (2^64 addresses, one per attempt if it likes), so an IPv6 address counts by its /64.
 */
import { isIPv6 } from "node:net";

/** The key a per-address limit counts under: the IPv4 address, or the IPv6 address's /64 prefix. */
export function addressGroup(address: string): string {
	const bare = address.replace(/%.*$/, ""); // a zone id (fe80::1%eth0) names an interface, not a client
	if (!isIPv6(bare)) return address;
	const [head = "", tail = ""] = bare.split("::");
	const groups = (part: string) => (part === "" ? [] : part.split(":"));
	const left = groups(head);
	const right = groups(tail);
	// An embedded IPv4 tail (::ffff:1.2.3.4 and the like) is two groups; the first four never contain one.
	const rightLength = right.reduce((n, g) => n + (g.includes(".") ? 2 : 1), 0);
	const full = bare.includes("::") ? [...left, ...Array<string>(8 - left.length - rightLength).fill("0"), ...right] : left;
	return `${full
		.slice(0, 4)
		.map((g) => parseInt(g, 16).toString(16))
		.join(":")}::/64`;
}
