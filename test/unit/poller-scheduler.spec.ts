/**
 * The pollers' scan (services/ingest/poller-scheduler.ts) on one node: it takes every polling bot's
 * lease, runs one scan at a time (and one more if asked meanwhile), and on stopping aborts its
 * pollers and waits for them.
 */
import { randomBytes } from "node:crypto";
import { ServiceBroker } from "moleculer";
import { seal } from "../../lib/crypto";
import type { Database } from "../../lib/db/connection";
import { LeaseRunner } from "../../lib/lease";
import type { SharedState } from "../../lib/state";
import { createMemoryState } from "../../lib/state/memory";
import type { TelegramClient } from "../../lib/telegram/client";
import { BOT_TOKEN_PURPOSE } from "../../services/ingest/bot-routes";
import { PollerScheduler } from "../../services/ingest/poller-scheduler";
import { insertBot, migratedDatabase } from "../support/database";
import { silentLogger } from "../support/harness";

const keys = [{ id: "k1", key: randomBytes(32) }];

async function until(check: () => boolean, ms = 5_000): Promise<void> {
	const deadline = Date.now() + ms;
	while (!check()) {
		if (Date.now() > deadline) throw new Error("timed out");
		await new Promise((r) => setTimeout(r, 10));
	}
}

describe("the pollers' scan", () => {
	let db: Database;
	let state: SharedState;
	let broker: ServiceBroker;
	let botIds: number[];
	/** The tokens of the long polls open now: each ends (with no update) only when its poller is aborted. */
	const polling: string[] = [];
	const telegram = {
		getUpdates: (token: string, _offset: number, _seconds: number, signal: AbortSignal) =>
			new Promise((resolve) => {
				// As the real client: a poll asked with its signal aborted already ends at once.
				if (signal.aborted) return resolve([]);
				polling.push(token);
				signal.addEventListener("abort", () => {
					polling.splice(polling.indexOf(token), 1);
					resolve([]);
				});
			}),
	} as unknown as TelegramClient;

	const scheduler = () => {
		const leases = new LeaseRunner(state, "node-a:1", { ttlMs: 10_000 });
		return { leases, pollers: new PollerScheduler({ db, config: { encryptionKeys: keys }, telegram, state, logger: silentLogger, leases, broker, store: async () => undefined }) };
	};

	beforeAll(async () => {
		db = await migratedDatabase();
		state = createMemoryState();
		broker = new ServiceBroker({ nodeID: "node-a", logger: false });
		botIds = [];
		for (let i = 0; i < 3; i++) {
			const bot = await insertBot(db, { mode: "polling" });
			await bot.update({ token_ciphertext: seal(keys, BOT_TOKEN_PURPOSE, `${bot.id}:token`).ciphertext, key_id: "k1" });
			botIds.push(bot.id);
		}
		await insertBot(db, { mode: "webhook" });
	});
	afterAll(async () => {
		await state.close();
		await db.close();
	});

	it("alone, polls every polling bot; stopped, aborts its pollers and releases their leases", async () => {
		const { leases, pollers } = scheduler();
		await pollers.schedule();
		await until(() => polling.length === 3);
		expect(polling.sort()).toEqual(botIds.map((id) => `${id}:token`).sort());
		expect(leases.held.sort()).toEqual(botIds.map((id) => `poller:bot:${id}`).sort());

		await pollers.stopped();
		expect(polling).toEqual([]);
		expect(leases.held).toEqual([]);
		expect(await state.leaseHolders(botIds.map((id) => `poller:bot:${id}`))).toEqual([null, null, null]);
		// Stopped: no scan starts a poller any more.
		await pollers.schedule();
		expect(leases.held).toEqual([]);
	});

	it("one scan at a time: scans asked meanwhile share the one under way, and make one more after it", async () => {
		const { leases, pollers } = scheduler();
		// One read of the leases' holders per scan.
		const scans = jest.spyOn(leases, "available");
		const first = pollers.schedule();
		expect(pollers.schedule()).toBe(first);
		expect(pollers.schedule()).toBe(first);
		await first;
		await pollers.stopped();
		expect(scans).toHaveBeenCalledTimes(2);
	});

	it("a bot changed: its poller stops if its token was replaced or it polls no more, not otherwise", async () => {
		const { leases, pollers } = scheduler();
		await pollers.schedule();
		await until(() => polling.length === 3);
		const [kept, replaced, switched] = botIds as [number, number, number];

		await pollers.stopIfChanged(kept, false);
		await pollers.stopIfChanged(replaced, true);
		await db.models.Bot.update({ mode: "webhook" }, { where: { id: switched } });
		await pollers.stopIfChanged(switched, false);
		await until(() => polling.length === 1);
		expect(polling).toEqual([`${kept}:token`]);
		expect(leases.isRunning(`poller:bot:${kept}`)).toBe(true);

		await pollers.stopped();
		await db.models.Bot.update({ mode: "polling" }, { where: { id: switched } });
	});
});
