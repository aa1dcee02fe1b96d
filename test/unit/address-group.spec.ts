/** lib/address-group.ts: per-address limits count an IPv6 client by its /64. */
import { addressGroup } from "../../lib/address-group";

describe("addressGroup", () => {
	it("keeps an IPv4 address (and anything that is not an IPv6 address) as it is", () => {
		expect(addressGroup("198.51.100.20")).toBe("198.51.100.20");
		expect(addressGroup("")).toBe("");
		expect(addressGroup("unknown")).toBe("unknown");
	});

	it("puts the addresses of one /64 together, however they are written", () => {
		const group = "2001:db8:77:1::/64";
		for (const address of ["2001:db8:77:1::1", "2001:db8:77:1::ffff", "2001:0db8:0077:0001:aaaa:bbbb:cccc:dddd", "2001:DB8:77:1:0:0:0:1", "2001:db8:77:1::1%eth0"]) {
			expect(addressGroup(address)).toBe(group);
		}
		expect(addressGroup("2001:db8:77:2::1")).toBe("2001:db8:77:2::/64");
	});

	it("expands :: wherever it stands, embedded IPv4 tails included", () => {
		expect(addressGroup("::1")).toBe("0:0:0:0::/64");
		expect(addressGroup("2001:db8::1")).toBe("2001:db8:0:0::/64");
		expect(addressGroup("fe80::")).toBe("fe80:0:0:0::/64");
		expect(addressGroup("64:ff9b::192.0.2.1")).toBe("64:ff9b:0:0::/64");
		expect(addressGroup("1:2:3::4:5:6:7")).toBe("1:2:3:0::/64");
	});

	it("an IPv4-mapped address, however written, is the IPv4 client it names", () => {
		for (const address of ["::ffff:198.51.100.7", "::FFFF:198.51.100.7", "::ffff:c633:6407", "0:0:0:0:0:ffff:c633:6407"]) {
			expect(addressGroup(address)).toBe("198.51.100.7");
		}
		expect(addressGroup("::ffff:198.51.100.8")).toBe("198.51.100.8");
	});
});
