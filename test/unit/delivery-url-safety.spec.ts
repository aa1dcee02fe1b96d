/**
 * Outbound safety of webhook URLs (services/delivery/url-safety.ts): which addresses a webhook may
 * never reach (loopback, private, link-local and cloud metadata, carrier-grade NAT, IPv6 unique-local
 * and link-local, IPv4-mapped IPv6), which URLs a webhook may have at all, and the checks at save
 * time (assertPublicUrl) and at connection time (safeLookup).
 */
import type { LookupAddress } from "node:dns";
import { GatewayError } from "../../lib/errors";
import { assertPublicUrl, isPrivateAddress, parseWebhookUrl, safeLookup } from "../../services/delivery/url-safety";

function fieldsOf(fn: () => unknown): string[] {
	try {
		fn();
	} catch (err) {
		expect(err).toBeInstanceOf(GatewayError);
		expect((err as GatewayError).type).toBe("VALIDATION_ERROR");
		expect((err as GatewayError).code).toBe(400);
		return ((err as GatewayError).data as { fields: Array<{ field: string }> }).fields.map((f) => f.field);
	}
	throw new Error("expected a validation error");
}

describe("isPrivateAddress", () => {
	it.each([
		["127.0.0.1", "IPv4 loopback"],
		["127.255.255.254", "the rest of 127/8"],
		["10.0.0.1", "10/8"],
		["10.255.255.255", "the top of 10/8"],
		["172.16.0.1", "the bottom of 172.16/12"],
		["172.31.255.255", "the top of 172.16/12"],
		["192.168.0.1", "192.168/16"],
		["192.168.255.255", "the top of 192.168/16"],
		["169.254.169.254", "the cloud metadata address"],
		["169.254.0.1", "IPv4 link-local"],
		["100.64.0.1", "the bottom of carrier-grade NAT 100.64/10"],
		["100.127.255.255", "the top of 100.64/10"],
		["100.100.100.200", "a metadata address inside 100.64/10"],
		["0.0.0.0", "the unspecified address"],
		["224.0.0.1", "multicast"],
		["255.255.255.255", "broadcast"],
		["::1", "IPv6 loopback"],
		["::", "the IPv6 unspecified address"],
		["fc00::1", "the bottom of fc00::/7"],
		["fd00::1", "unique-local fd00::/8"],
		["fdff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "the top of fc00::/7"],
		["fd00:ec2::254", "the AWS IPv6 metadata address"],
		["fe80::1", "IPv6 link-local"],
		["febf:ffff::1", "the top of fe80::/10"],
		["::ffff:127.0.0.1", "IPv4-mapped loopback"],
		["::FFFF:10.1.2.3", "IPv4-mapped 10/8 (upper case)"],
		["::ffff:169.254.169.254", "IPv4-mapped metadata"],
		["::ffff:7f00:1", "IPv4-mapped loopback in hex (as WHATWG URLs write it)"],
		["::127.0.0.1", "IPv4-compatible loopback (deprecated form)"],
		["::7f00:1", "IPv4-compatible loopback in hex"],
		["::ffff:c0a8:101", "IPv4-mapped 192.168.1.1 in hex"],
		["0:0:0:0:0:ffff:7f00:1", "IPv4-mapped loopback written out"],
		["2002:7f00:1::", "6to4 carrying 127.0.0.1"],
		["2002:a9fe:a9fe::1", "6to4 carrying the metadata address"],
		["2002:c0a8:101::", "6to4 carrying 192.168.1.1"],
		["2001:0:4136:e378:8000:63bf:3fff:fdd2", "Teredo"],
		["fec0::1", "deprecated site-local fec0::/10"],
		["feff:ffff::1", "the top of fec0::/10"],
		["64:ff9b:1::a00:1", "local-use NAT64 carrying 10.0.0.1"],
		["::ffff:0:7f00:1", "IPv4-translated loopback"],
		["not-an-address", "a name (not an address)"],
		["", "nothing"],
	])("%s (%s) is refused", (address) => {
		expect(isPrivateAddress(address)).toBe(true);
	});

	it.each([
		["8.8.8.8", "a public IPv4"],
		["1.1.1.1", "another public IPv4"],
		["172.15.255.255", "just below 172.16/12"],
		["172.32.0.0", "just above 172.16/12"],
		["100.63.255.255", "just below 100.64/10"],
		["100.128.0.0", "just above 100.64/10"],
		["169.253.255.255", "just below 169.254/16"],
		["11.0.0.1", "just above 10/8"],
		["192.169.0.1", "just above 192.168/16"],
		["2001:4860:4860::8888", "a public IPv6"],
		["2606:4700:4700::1111", "another public IPv6"],
		["2a00:1450:4001:800::200e", "a third public IPv6"],
		["fbff::1", "just below fc00::/7"],
		["::ffff:8.8.8.8", "IPv4-mapped public"],
		["::ffff:808:808", "IPv4-mapped public in hex"],
		["2002:808:808::1", "6to4 carrying a public IPv4"],
	])("%s (%s) is allowed", (address) => {
		expect(isPrivateAddress(address)).toBe(false);
	});
});

describe("parseWebhookUrl", () => {
	it.each(["https://hooks.example.com/telegram", "http://example.com:8080/a/b?c=d", "http://127.0.0.1:3000/hook", "https://[2001:db8::1]/x"])("accepts %s", (raw) => {
		const url = parseWebhookUrl(raw);
		expect(url).toBeInstanceOf(URL);
		expect(url.href).toBe(new URL(raw).href);
	});

	it.each([
		["not a url", "no scheme at all"],
		["/relative/path", "a relative path"],
		["http://", "no host"],
		["ftp://example.com/hook", "ftp"],
		["file:///etc/passwd", "file"],
		["javascript:alert(1)", "javascript"],
		["ws://example.com/socket", "a WebSocket scheme"],
		["https://user:secret@example.com/hook", "user and password"],
		["https://user@example.com/hook", "a user name only"],
		["https://:secret@example.com/hook", "a password only"],
	])("refuses %s (%s) with a 400 naming url", (raw) => {
		expect(fieldsOf(() => parseWebhookUrl(raw))).toEqual(["url"]);
	});
});

describe("assertPublicUrl", () => {
	const refused = async (raw: string): Promise<string[]> => {
		try {
			await assertPublicUrl(new URL(raw), false);
		} catch (err) {
			return fieldsOf(() => {
				throw err;
			});
		}
		throw new Error(`${raw} was not refused`);
	};

	it.each(["http://127.0.0.1:8080/x", "http://10.1.2.3/x", "http://169.254.169.254/latest/meta-data", "http://[::1]/x", "http://[::ffff:127.0.0.1]/x", "http://[fd00::5]/x", "http://0x7f.1/x", "http://2130706433/x", "http://localhost:9/x"])(
		"refuses %s with a 400 naming url",
		async (raw) => {
			expect(await refused(raw)).toEqual(["url"]);
		},
	);

	it("accepts a public address literal without a lookup", async () => {
		await expect(assertPublicUrl(new URL("https://8.8.8.8/hook"), false)).resolves.toBeUndefined();
		await expect(assertPublicUrl(new URL("https://[2606:4700:4700::1111]/hook"), false)).resolves.toBeUndefined();
	});

	it("accepts anything when private addresses are allowed (WEBHOOK_ALLOW_PRIVATE=true)", async () => {
		await expect(assertPublicUrl(new URL("http://127.0.0.1/x"), true)).resolves.toBeUndefined();
		await expect(assertPublicUrl(new URL("http://169.254.169.254/x"), true)).resolves.toBeUndefined();
	});
});

describe("safeLookup (undici's lookup at connection time)", () => {
	const lookup = (allowPrivate: boolean, host: string, all: boolean) =>
		new Promise<{ err: NodeJS.ErrnoException | null; address: string | LookupAddress[] }>((resolve) =>
			safeLookup(allowPrivate)(host, { all }, (err, address) => resolve({ err, address })),
		);

	it("refuses a name that resolves to loopback, with EADDRNOTALLOWED", async () => {
		const { err } = await lookup(false, "localhost", false);
		expect(err?.code).toBe("EADDRNOTALLOWED");
		expect((await lookup(false, "localhost", true)).err?.code).toBe("EADDRNOTALLOWED");
	});

	it("passes loopback through when private addresses are allowed, in both answer forms", async () => {
		const one = await lookup(true, "localhost", false);
		expect(one.err).toBeNull();
		expect(typeof one.address).toBe("string");
		expect(isPrivateAddress(one.address as string)).toBe(true);
		const many = await lookup(true, "localhost", true);
		expect(many.err).toBeNull();
		expect(Array.isArray(many.address)).toBe(true);
		expect((many.address as LookupAddress[]).length).toBeGreaterThan(0);
	});
});
