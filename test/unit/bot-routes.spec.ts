/** services/ingest/bot-routes.ts: webhook path -> bot and secret, cached; bots.changed (clear) wins over a lookup in flight. */
import { randomBytes } from "node:crypto";
import type { Database } from "../../lib/db/connection";
import { seal } from "../../lib/crypto";
import { BotRoutes, secretMatches, WEBHOOK_SECRET_PURPOSE } from "../../services/ingest/bot-routes";

const keys = [{ id: "k1", key: randomBytes(32) }];
const SECRET = "a".repeat(64);

/** A database whose bot lookups answer when the test says so, with the bot as it is then. */
function fakeDb() {
	const bot = { id: 7, is_active: true, webhook_secret_ciphertext: seal(keys, WEBHOOK_SECRET_PURPOSE, SECRET).ciphertext, key_id: "k1" };
	const pending: Array<() => void> = [];
	let lookups = 0;
	const db = {
		models: {
			Bot: {
				findOne: () => {
					lookups++;
					const snapshot = { ...bot };
					return new Promise((resolve) => pending.push(() => resolve(snapshot)));
				},
			},
		},
	} as unknown as Database;
	return { db, bot, answerAll: () => pending.splice(0).forEach((answer) => answer()), lookups: () => lookups };
}

describe("BotRoutes", () => {
	it("looks a path up once for the callers asking at the same time, and keeps it", async () => {
		const { db, answerAll, lookups } = fakeDb();
		const routes = new BotRoutes(db, keys);
		const both = Promise.all([routes.find("p"), routes.find("p")]);
		answerAll();
		const [first, second] = await both;
		expect(first).toEqual({ botId: 7, active: true, secret: Buffer.from(SECRET) });
		expect(second).toBe(first);
		expect(await routes.find("p")).toBe(first);
		expect(lookups()).toBe(1);
		expect(secretMatches(first!, SECRET)).toBe(true);
	});

	it("a lookup that a clear (bots.changed) overtook answers its callers but is not kept: the bot deleted meanwhile is seen at once", async () => {
		const { db, bot, answerAll, lookups } = fakeDb();
		const routes = new BotRoutes(db, keys);
		const before = routes.find("p");
		// The bot is deleted (read as active by the lookup already under way), and bots.changed arrives.
		routes.clear();
		answerAll();
		expect((await before)!.active).toBe(true);
		bot.is_active = false;
		const after = routes.find("p");
		answerAll();
		expect((await after)!.active).toBe(false);
		expect(lookups()).toBe(2);
	});
});
