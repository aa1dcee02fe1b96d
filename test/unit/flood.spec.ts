/** Flood pacing kept from when Telegram answered sends, and the cap on a 429's pause. */
import { MAX_RETRY_AFTER_SECONDS, noteAnswered, pause, reserveSend, SendTimes } from "../../services/bots/flood";
import { createMemoryState } from "../../lib/state/memory";

describe("SendTimes", () => {
	it("holds a chat's next send a second (and a margin) after its last one went out", () => {
		const times = new SendTimes();
		times.record(1, 10_000);
		expect(times.waitMs(1, "private", 10_500)).toBe(650);
		expect(times.waitMs(1, "private", 11_150)).toBe(0);
		expect(times.waitMs(2, "private", 10_500)).toBe(0);
	});

	it("keeps a group to 20 a minute and the bot to 30 a second, counted from when sends went out", () => {
		const times = new SendTimes();
		for (let i = 0; i < 20; i++) times.record(7, 1_000 + i * 1_500);
		expect(times.waitMs(7, "group", 40_000)).toBe(1_000 + 60_000 + 1_000 - 40_000);
		expect(times.waitMs(7, "private", 40_000)).toBe(0);
		const bot = new SendTimes();
		for (let chat = 0; chat < 30; chat++) bot.record(chat, 5_000 + chat);
		expect(bot.waitMs(99, "private", 5_100)).toBe(5_000 + 1_150 - 5_100);
		expect(bot.waitMs(99, "private", 6_200)).toBe(0);
	});

	it("counts a send still unanswered as happening now: its chat waits, and it takes one of the bot's 30", () => {
		const times = new SendTimes();
		times.started(1);
		expect(times.waitMs(1, "private", 10_000)).toBe(100);
		expect(times.waitMs(2, "private", 10_000)).toBe(0);
		times.record(1, 10_300);
		expect(times.waitMs(1, "private", 10_300)).toBe(1_150);

		const bot = new SendTimes();
		for (let chat = 0; chat < 25; chat++) bot.record(chat, 5_000 + chat);
		for (let chat = 100; chat < 105; chat++) bot.started(chat);
		// 25 answered and 5 in flight: the oldest answered one must leave the window first.
		expect(bot.waitMs(99, "private", 5_100)).toBe(5_000 + 1_150 - 5_100);
		expect(bot.waitMs(99, "private", 6_200)).toBe(0);
		for (let chat = 105; chat < 130; chat++) bot.started(chat);
		// 30 in flight: wait for answers.
		expect(bot.waitMs(99, "private", 9_000)).toBe(100);
	});
});

describe("pause", () => {
	it("caps a 429's retry_after at an hour (a timer cannot wait 30 days: it would fire at once)", async () => {
		const state = createMemoryState();
		await pause(state, 1, 3_000_000);
		const { pausedMs } = await reserveSend(state, 1, 10, "private");
		expect(pausedMs).toBeGreaterThan(MAX_RETRY_AFTER_SECONDS * 1_000 - 1_000);
		expect(pausedMs).toBeLessThanOrEqual(MAX_RETRY_AFTER_SECONDS * 1_000);
	});

	it("holds every chat of that bot, takes no slot while it holds, and lets go when it ends", async () => {
		let clock = 1_000_000;
		const state = createMemoryState(() => clock);
		await pause(state, 1, 2);
		expect(await reserveSend(state, 1, 10, "private")).toEqual({ waitMs: 0, pausedMs: expect.any(Number) });
		expect((await reserveSend(state, 1, -20, "group")).pausedMs).toBeGreaterThan(0);
		expect(await reserveSend(state, 2, 10, "private")).toEqual({ waitMs: 0, pausedMs: 0 });
		clock += 2_000;
		// Nothing was taken while paused: both chats go at once, and then wait their second.
		expect(await reserveSend(state, 1, 10, "private")).toEqual({ waitMs: 0, pausedMs: 0 });
		expect(await reserveSend(state, 1, -20, "group")).toEqual({ waitMs: 0, pausedMs: 0 });
		expect((await reserveSend(state, 1, 10, "private")).waitMs).toBe(1_150);
		await state.close();
	});
});

describe("reserveSend takes a send's slots all or none", () => {
	it("a chat refused by the bot's 30 a second keeps its own slot: it goes as soon as the bot has room, not a second later", async () => {
		let clock = 5_000_000;
		const state = createMemoryState(() => clock);
		for (let chat = 1; chat <= 30; chat++) expect((await reserveSend(state, 1, chat, "private")).waitMs).toBe(0);
		clock += 100;
		expect((await reserveSend(state, 1, 99, "private")).waitMs).toBe(1_050);
		clock += 1_050;
		expect((await reserveSend(state, 1, 99, "private")).waitMs).toBe(0);
		await state.close();
	});
});

/**
 * Two nodes, one after the other holding the bot's sender lease, share the state; each has its own
 * SendTimes (empty on the node that just took over). Node A's sends reach Telegram slowly (answered
 * 700 ms after their slot), node B's at once: B's next reservation must count from A's answers.
 */
describe("reserveSend after a send another node had answered late", () => {
	let clock = 0;
	const state = createMemoryState(() => clock);
	afterAll(() => state.close());
	const nodeB = new SendTimes();

	it("a private chat: node B's next send waits a second (and the margin) after node A's answer, not after A's reservation", async () => {
		clock = 1_000_000;
		expect((await reserveSend(state, 1, 10, "private")).waitMs).toBe(0);
		clock += 700;
		await noteAnswered(state, 1, 10, "private");
		clock += 500; // 1 200 ms after A's reservation: its slot is free, its answer is 500 ms old.
		expect(nodeB.waitMs(10, "private", clock)).toBe(0);
		expect((await reserveSend(state, 1, 10, "private")).waitMs).toBe(1_150 - 500);
		clock += 649;
		expect((await reserveSend(state, 1, 10, "private")).waitMs).toBe(1);
		clock += 1;
		expect((await reserveSend(state, 1, 10, "private")).waitMs).toBe(0);
	});

	it("the bot's 30 a second: node B waits for the window counted from A's answers", async () => {
		clock = 2_000_000;
		for (let chat = 100; chat < 130; chat++) expect((await reserveSend(state, 2, chat, "private")).waitMs).toBe(0);
		clock += 700;
		for (let chat = 100; chat < 130; chat++) await noteAnswered(state, 2, chat, "private");
		clock += 500;
		expect((await reserveSend(state, 2, 999, "private")).waitMs).toBe(1_150 - 500);
		clock += 649;
		expect((await reserveSend(state, 2, 1_000, "private")).waitMs).toBe(1);
		clock += 1;
		expect((await reserveSend(state, 2, 1_001, "private")).waitMs).toBe(0);
	});

	it("a group's 20 a minute: counted from A's answers", async () => {
		clock = 3_000_000;
		for (let i = 0; i < 20; i++) {
			expect((await reserveSend(state, 3, -500, "group")).waitMs).toBe(0);
			clock += 700;
			await noteAnswered(state, 3, -500, "group");
			clock += 1_200;
		}
		// The first reservation has left its minute (and the margin); the first answer has not.
		clock = 3_000_000 + 61_000 + 1;
		expect((await reserveSend(state, 3, -500, "group")).waitMs).toBe(700 + 61_000 - 61_001);
		// That refusal took nothing (not the chat's one-a-second slot either): it goes once the answer has left the minute.
		clock = 3_000_000 + 61_000 + 700;
		expect((await reserveSend(state, 3, -500, "group")).waitMs).toBe(0);
	});

	it("an answer only delays: without one, the reservations alone count, as before", async () => {
		clock = 4_000_000;
		expect((await reserveSend(state, 4, 10, "private")).waitMs).toBe(0);
		clock += 1_151;
		expect((await reserveSend(state, 4, 10, "private")).waitMs).toBe(0);
	});
});

describe("SendTimes memory", () => {
	it("past 1,000 chats, forgets those quiet for over a minute (swept at most once a minute): a broadcast's 5,000 chats do not stay for the node's life", () => {
		const times = new SendTimes();
		const t0 = 1_700_000_000_000;
		for (let chat = 1; chat <= 5_000; chat++) {
			times.started(chat);
			times.record(chat, t0 + chat);
		}
		expect(times.chatsRemembered).toBe(5_000);
		// Still inside the window: nothing may be forgotten yet.
		times.started(9_001);
		times.record(9_001, t0 + 30_000);
		expect(times.chatsRemembered).toBe(5_001);
		// Two minutes on, one more send sweeps the quiet chats out; the pacing of the recent one is kept.
		times.started(9_002);
		times.record(9_002, t0 + 125_000);
		expect(times.chatsRemembered).toBe(1);
		expect(times.waitMs(9_002, "private", t0 + 125_100)).toBeGreaterThan(0);
	});
});

describe("SendTimes.sweep (the scheduler's, for bots not sending on this node)", () => {
	it("forgets quiet chats however few, and says when nothing is left: no chat, no send in flight or in the last minute", () => {
		const times = new SendTimes();
		const t0 = 1_700_000_000_000;
		times.started(1);
		times.record(1, t0);
		times.started(2);
		expect(times.sweep(t0 + 30_000)).toBe(false);
		expect(times.chatsRemembered).toBe(1);
		// Chat 2's send is still unanswered: not empty yet, though chat 1 is forgotten.
		expect(times.sweep(t0 + 120_000)).toBe(false);
		expect(times.chatsRemembered).toBe(0);
		times.record(2, t0 + 121_000);
		expect(times.sweep(t0 + 150_000)).toBe(false);
		expect(times.sweep(t0 + 200_000)).toBe(true);
	});
});
