/**
 * What per-address limits count by. An IPv4 address is one client; an IPv6 client is handed a whole
 * /64 (2^64 addresses, one per attempt if it likes), so an IPv6 address counts by its /64. An
 * IPv4-mapped address (::ffff:a.b.c.d, in any spelling) is the IPv4 client it names.
 */
import { isIPv6 } from "node:net";

/** The eight 16-bit groups of an IPv6 address (valid, without a zone id). */
function groupsOf(address: string): number[] {
	const [head = "", tail = ""] = address.split("::");
	// An embedded IPv4 tail (a.b.c.d) is the last two groups.
	const group = (g: string) => {
		if (!g.includes(".")) return [parseInt(g, 16)];
		const [a = 0, b = 0, c = 0, d = 0] = g.split(".").map(Number);
		return [(a << 8) | b, (c << 8) | d];
	};
	const parse = (part: string) => (part === "" ? [] : part.split(":").flatMap(group));
	const left = parse(head);
	const right = parse(tail);
	return address.includes("::") ? [...left, ...Array<number>(8 - left.length - right.length).fill(0), ...right] : left;
}

/** The key a per-address limit counts under: the IPv4 address, or the IPv6 address's /64 prefix. */
export function addressGroup(address: string): string {
	const bare = address.replace(/%.*$/, ""); // a zone id (fe80::1%eth0) names an interface, not a client
	if (!isIPv6(bare)) return address;
	const groups = groupsOf(bare);
	if (groups.slice(0, 5).every((g) => g === 0) && groups[5] === 0xffff) {
		return [groups[6]! >> 8, groups[6]! & 0xff, groups[7]! >> 8, groups[7]! & 0xff].join(".");
	}
	return `${groups
		.slice(0, 4)
		.map((g) => g.toString(16))
		.join(":")}::/64`;
}
