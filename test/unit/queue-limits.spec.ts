/** services/bots/queue-limits.ts: when a send finds its chat's or bot's queue full, and when to come back. */
import { toApiError } from "../../lib/errors";
import { queueFullError } from "../../services/bots/queue-limits";

const limits = { perChat: 100, perBot: 3_000 };

describe("queueFullError", () => {
	it("lets a send through while both queues have room", () => {
		expect(queueFullError({ chat: 99, bot: 2_999 }, limits, "private")).toBeNull();
	});

	it("a full private chat: 429 naming the chat's queue, back in a second per message over (one a second drains)", () => {
		const full = toApiError(queueFullError({ chat: 100, bot: 100 }, limits, "private"));
		expect(full.status).toBe(429);
		expect(full.body.error).toMatchObject({ code: "RATE_LIMITED", details: { queue: "chat", limit: 100, retry_after: 1 } });
		expect(full.retryAfter).toBe(1);
		// Overshot by racing sends: longer.
		expect(queueFullError({ chat: 104, bot: 104 }, limits, "private")!.data).toMatchObject({ retry_after: 5 });
	});

	it("a full group drains at 20 a minute: 3 s per message", () => {
		expect(queueFullError({ chat: 100, bot: 100 }, limits, "group")!.data).toEqual({ queue: "chat", limit: 100, retry_after: 3 });
	});

	it("a full bot drains at 30 a second: at least 1 s; the longer wait wins when both are full", () => {
		expect(queueFullError({ chat: 0, bot: 3_000 }, limits, "private")!.data).toEqual({ queue: "bot", limit: 3_000, retry_after: 1 });
		expect(queueFullError({ chat: 0, bot: 3_089 }, limits, "private")!.data).toEqual({ queue: "bot", limit: 3_000, retry_after: 3 });
		expect(queueFullError({ chat: 100, bot: 3_300 }, limits, "private")!.data).toMatchObject({ queue: "bot", retry_after: 11 });
		expect(queueFullError({ chat: 110, bot: 3_000 }, limits, "private")!.data).toMatchObject({ queue: "chat", retry_after: 11 });
	});
});
