/** The 15 s re-check of live connections: a tick while the previous pass still runs is skipped and said once. */
import { skipWhileRunning } from "../../mixins/event-stream/skip-while-running";

function gate() {
	let open!: () => void;
	const opened = new Promise<void>((resolve) => (open = resolve));
	return { opened, open };
}

describe("skipWhileRunning", () => {
	it("runs one pass at a time: ticks during a pass are skipped, the overrun told once, the next tick after it runs", async () => {
		let runs = 0;
		let current = gate();
		const overruns: number[] = [];
		let clock = 1_000;
		const tick = skipWhileRunning(
			async () => {
				runs += 1;
				await current.opened;
			},
			(ms) => overruns.push(ms),
			() => clock,
		);
		const first = tick();
		clock += 15_000;
		await tick();
		clock += 15_000;
		await tick();
		expect(runs).toBe(1);
		expect(overruns).toEqual([15_000]);

		current.open();
		await first;
		current = gate();
		const second = tick();
		expect(runs).toBe(2);
		await tick(); // this pass overran too: told again, once
		expect(overruns).toEqual([15_000, 0]);
		current.open();
		await second;
	});

	it("a pass that fails does not block the next", async () => {
		let runs = 0;
		const tick = skipWhileRunning(async () => {
			runs += 1;
			throw new Error("auth away");
		}, jest.fn());
		await expect(tick()).rejects.toThrow("auth away");
		await expect(tick()).rejects.toThrow("auth away");
		expect(runs).toBe(2);
	});
});
