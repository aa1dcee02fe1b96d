/** writeBufferBytes (services/realtime/socket-packets.ts): what a socket.io client's engine.io write buffer holds. */
import { writeBufferBytes, type QueuedPacket } from "../../services/realtime/socket-packets";

describe("writeBufferBytes", () => {
	it("counts string and binary packets, each once as the buffer grows", () => {
		const buffer: QueuedPacket[] = [{ data: "x".repeat(100) }, { data: Buffer.alloc(50) }];
		expect(writeBufferBytes(buffer)).toBe(150);
		buffer.push({ data: "y".repeat(60_000) }, { data: undefined }, {});
		expect(writeBufferBytes(buffer)).toBe(60_150);
		expect(writeBufferBytes(buffer)).toBe(60_150);
	});

	it("starts again for a new buffer (engine.io replaces it when it flushes) or one that shrank", () => {
		const buffer: QueuedPacket[] = [{ data: "abc" }, { data: "def" }];
		expect(writeBufferBytes(buffer)).toBe(6);
		buffer.splice(0, 2, { data: "z" });
		expect(writeBufferBytes(buffer)).toBe(1);
		expect(writeBufferBytes([])).toBe(0);
	});
});
