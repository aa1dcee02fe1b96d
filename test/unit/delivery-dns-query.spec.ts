/**
 * dnsQuery (services/delivery/host-lookup.ts) through a real c-ares Resolver against a DNS server on
 * loopback: answers come back as addresses, a name the server does not know fails ENOTFOUND, and a
 * server that never answers fails ETIMEOUT within the resolver's own timeout (no thread of the pool
 * is held meanwhile: c-ares uses sockets).
 */
import { createSocket, type Socket } from "node:dgram";
import { Resolver } from "node:dns/promises";
import { dnsQuery } from "../../services/delivery/host-lookup";

const A = 1;
const AAAA = 28;

/** The queried name and type of a DNS request (one question, no compression in questions). */
function question(msg: Buffer): { name: string; type: number; end: number } {
	const labels: string[] = [];
	let at = 12;
	while (msg[at]! > 0) {
		labels.push(msg.subarray(at + 1, at + 1 + msg[at]!).toString("ascii"));
		at += msg[at]! + 1;
	}
	return { name: labels.join(".").toLowerCase(), type: msg.readUInt16BE(at + 1), end: at + 5 };
}

/** Answers `records` (name -> IPv4), NXDOMAIN for other names, and nothing at all for `silent`. */
function dnsServer(records: Record<string, string>, silent: string): Promise<{ socket: Socket; port: number; asked: string[] }> {
	const socket = createSocket("udp4");
	const asked: string[] = [];
	socket.on("message", (msg, from) => {
		const q = question(msg);
		asked.push(`${q.name}/${q.type}`);
		if (q.name === silent) return;
		const address = records[q.name];
		const header = Buffer.alloc(12);
		msg.copy(header, 0, 0, 2);
		header.writeUInt16BE(address === undefined ? 0x8183 : 0x8180, 2);
		header.writeUInt16BE(1, 4);
		const answers = address !== undefined && q.type === A ? [Buffer.from([0xc0, 0x0c, 0, A, 0, 1, 0, 0, 0, 60, 0, 4, ...address.split(".").map(Number)])] : [];
		header.writeUInt16BE(answers.length, 6);
		socket.send(Buffer.concat([header, msg.subarray(12, q.end), ...answers]), from.port, from.address);
	});
	return new Promise((resolve) => socket.bind(0, "127.0.0.1", () => resolve({ socket, port: socket.address().port, asked })));
}

describe("dnsQuery through c-ares", () => {
	let server: Awaited<ReturnType<typeof dnsServer>>;
	let query: ReturnType<typeof dnsQuery>;

	beforeAll(async () => {
		server = await dnsServer({ "hooks.example": "93.184.216.34" }, "silent.example");
		const resolver = new Resolver({ timeout: 200, tries: 1 });
		resolver.setServers([`127.0.0.1:${server.port}`]);
		query = dnsQuery(resolver);
	});
	afterAll(() => server.socket.close());

	it("answers a name's A records as addresses (its AAAA being empty)", async () => {
		expect(await query("hooks.example")).toEqual([{ address: "93.184.216.34", family: 4 }]);
		expect(server.asked).toEqual(expect.arrayContaining([`hooks.example/${A}`, `hooks.example/${AAAA}`]));
	});

	it("fails ENOTFOUND for a name the server does not know", async () => {
		await expect(query("nowhere.example")).rejects.toMatchObject({ code: "ENOTFOUND" });
	});

	it("fails ETIMEOUT (its own timeout, 200 ms here) when the server never answers", async () => {
		await expect(query("silent.example")).rejects.toMatchObject({ code: "ETIMEOUT" });
	});
});
