import { rememberChats, type ChatCache, type ChatCacheEntry } from "../../services/ingest/chat-upsert";

const entry = (id: number): ChatCacheEntry => ({ id, fingerprint: `f${id}`, learnedAt: id });

describe("rememberChats (ingest's chat cache)", () => {
	it("past its cap drops the chats learned longest ago, not the whole cache, and a chat learned again counts as new", () => {
		const cache: ChatCache = new Map([
			["1:a", entry(1)],
			["1:b", entry(2)],
			["1:c", entry(3)],
		]);
		rememberChats(cache, new Map([["1:a", entry(11)]]), 3);
		expect([...cache.keys()]).toEqual(["1:b", "1:c", "1:a"]);
		rememberChats(cache, new Map([["1:d", entry(4)], ["1:e", entry(5)]]), 3);
		expect([...cache.keys()]).toEqual(["1:a", "1:d", "1:e"]);
		expect(cache.get("1:a")).toEqual(entry(11));
	});
});
