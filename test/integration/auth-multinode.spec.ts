/**
 * Two api+auth nodes on Moleculer's Fake transporter, each with its own HTTP port and its own auth
 * caches, sharing the database and the in-memory shared state: revocations and rate limits hold
 * across nodes.
 */
import { insertBot, insertChat } from "../support/database";
import type { TestGateway } from "../support/harness";
import {
	adminToken,
	api,
	createKey,
	createUser,
	expectApiError,
	loginAction,
	me,
	pollUntil,
	sleep,
	startAuthGateway,
	waitForPeers,
	type Res,
} from "../support/auth";

const FLIP_WITHIN_MS = 1_000;

describe("auth across two nodes", () => {
	let gw: TestGateway;
	let admin: string;
	let node1: string;
	let node2: string;

	beforeAll(async () => {
		gw = await startAuthGateway({
			// Many sessions of one user are probed at once below: the default 100/s per user is not under test here.
			env: { RATE_LIMIT_DEFAULT: "1000" },
			nodes: [
				["api", "auth"],
				["api", "auth"],
			],
		});
		[node1, node2] = gw.nodes.map((n) => n.baseUrl) as [string, string];
		await waitForPeers(gw);
		admin = await adminToken(gw);
	});
	afterAll(() => gw.stop());

	/** Polls GET /auth/me on `baseUrl` until it is no longer 200; fails unless that is within FLIP_WITHIN_MS. Returns that answer. */
	async function refusedWithin(baseUrl: string, credential: string): Promise<Res> {
		let last: Res | undefined;
		const took = await pollUntil(async () => {
			last = await me(baseUrl, credential);
			return last.status !== 200;
		}, FLIP_WITHIN_MS);
		expect(took).not.toBeNull();
		expect(took!).toBeLessThanOrEqual(FLIP_WITHIN_MS);
		return last!;
	}

	it("runs two api nodes on two ports, both serving the same users", async () => {
		expect(node1).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
		expect(node2).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
		expect(node1).not.toBe(node2);
		const [a, b] = await Promise.all([me(node1, admin), me(node2, admin)]);
		expect(a.status).toBe(200);
		expect(b.body).toEqual(a.body);
		expect(await gw.runtime.db.models.User.count({ where: { username: "admin" } })).toBe(1);
	});

	it("a key revoked through node 1 is refused by node 2 within 1 s", async () => {
		const { id, key } = await createKey(node1, admin);
		// Both nodes have the key cached as good before the revocation.
		expect((await me(node2, key)).status).toBe(200);
		expect((await me(node1, key)).status).toBe(200);

		expect((await api(node1, "DELETE", `/apikeys/${id}`, admin)).status).toBe(204);
		expectApiError(await refusedWithin(node2, key), 401, "UNAUTHORIZED");
		expectApiError(await me(node1, key), 401, "UNAUTHORIZED");
	});

	it("a key rotated through node 1: node 2 refuses the old secret and accepts the new within 1 s", async () => {
		const { id, key } = await createKey(node1, admin);
		expect((await me(node2, key)).status).toBe(200);
		const rotated = await api(node1, "POST", `/apikeys/${id}/rotate`, admin);
		expect(rotated.status).toBe(200);
		const took = await pollUntil(async () => (await me(node2, key)).status === 401, FLIP_WITHIN_MS);
		expect(took).not.toBeNull();
		expect((await me(node2, String(rotated.body.key))).body).toMatchObject({ type: "api_key", id });
	});

	it("a user disabled through node 1 is refused by node 2 within 1 s", async () => {
		const user = await createUser(gw, admin, ["operator"]);
		expect((await me(node2, user.token)).status).toBe(200);
		expect((await api(node1, "PATCH", `/users/${user.id}`, admin, { is_active: false })).status).toBe(200);
		expectApiError(await refusedWithin(node2, user.token), 401, "UNAUTHORIZED");
	});

	it("a logout through node 1 ends that login's access token on node 2 within 1 s", async () => {
		const user = await createUser(gw, admin, ["viewer"]);
		const session = await loginAction(gw.broker, user.username, user.password);
		// Node 2 has the token verified and its login checked as open before the logout.
		expect((await me(node2, session.access_token)).status).toBe(200);
		const out = await api(node1, "POST", "/auth/logout", null, { refresh_token: session.refresh_token });
		expect(out.status).toBe(204);
		expectApiError(await refusedWithin(node2, session.access_token), 401, "UNAUTHORIZED");
		expect((await me(node2, user.token)).status).toBe(200);
	});

	it("even if node 2 misses the broadcast, a disabled user's sessions are all refused there within 1 s", async () => {
		// README / services/auth/cache.ts: revocable state lives briefly in each cache, so a change holds
		// everywhere within a second even if the auth.changed broadcast were lost. Node 2 is made deaf, and
		// sessions it has never seen are first shown to it one by one after the change, so that one of
		// them meets whatever stale state node 2 still holds, whatever its caches' lifetimes are.
		const user = await createUser(gw, admin, ["operator"]);
		const sessions = await Promise.all(Array.from({ length: 10 }, () => loginAction(gw.broker, user.username, user.password)));
		const auth2 = gw.nodes[1]!.broker.getLocalService("auth") as unknown as { cache: { apply(change: unknown): void } };
		const api2 = gw.nodes[1]!.broker.getLocalService("api") as unknown as { principals: { clear(): void } };
		const { apply } = auth2.cache;
		const { clear } = api2.principals;
		auth2.cache.apply = () => undefined;
		api2.principals.clear = () => undefined;
		try {
			expect((await me(node2, user.token)).status).toBe(200); // node 2 loads the user now
			const revokedAt = Date.now();
			expect((await api(node1, "PATCH", `/users/${user.id}`, admin, { is_active: false })).status).toBe(200);
			const probes: Array<{ session: number; at: number; status: number }> = [];
			const refused = new Set<number>();
			while (Date.now() - revokedAt < 2_500 && refused.size < sessions.length) {
				const due = sessions.map((_, i) => i).filter((i) => !refused.has(i) && i * 100 <= Date.now() - revokedAt);
				await Promise.all(
					due.map(async (i) => {
						const at = Date.now() - revokedAt;
						const { status } = await me(node2, sessions[i]!.access_token);
						probes.push({ session: i, at, status });
						if (status === 401) refused.add(i);
					}),
				);
				await sleep(50);
			}
			expect(refused.size).toBe(sessions.length);
			// Nothing asked a second or more after the change was let in.
			const late = probes.filter((p) => p.status !== 401 && p.at >= FLIP_WITHIN_MS).map((p) => `session ${p.session} at ${p.at} ms: ${p.status}`);
			expect({ count: late.length, first: late.slice(0, 5) }).toEqual({ count: 0, first: [] });
		} finally {
			auth2.cache.apply = apply;
			api2.principals.clear = clear;
		}
	});

	it("a can_manage grant revoked through node 1 makes node 2 answer 403 within 1 s", async () => {
		const bot = await insertBot(gw.runtime.db);
		const chatId = Number((await insertChat(gw.runtime.db, Number(bot.id), 77_001)).id);
		const operator = await createUser(gw, admin, ["operator"]);
		const grant = await api(node1, "PUT", `/chats/${chatId}/permissions`, admin, { user_id: operator.id, can_manage: true });
		expect(grant.status).toBe(201);
		const path = `/chats/${chatId}/permissions`;
		// Node 2 learns of the new grant (and caches it) before it is revoked.
		const learned = await pollUntil(async () => (await api(node2, "GET", path, operator.token)).status === 200, FLIP_WITHIN_MS);
		expect(learned).not.toBeNull();

		expect((await api(node1, "DELETE", `${path}/${Number(grant.body.id)}`, admin)).status).toBe(204);
		let last: Res | undefined;
		const took = await pollUntil(async () => {
			last = await api(node2, "GET", path, operator.token);
			return last.status !== 200;
		}, FLIP_WITHIN_MS);
		expect(took).not.toBeNull();
		expectApiError(last!, 403, "FORBIDDEN");
		expect(await gw.runtime.db.models.ChatPermission.count({ where: { chat_id: chatId } })).toBe(0);
	});

	it("a key's rate_limit is shared: requests alternating between the nodes get 429 after 4", async () => {
		const rate = 4;
		const { key } = await createKey(node1, admin, { rate_limit: rate });
		const results: Array<{ node: number; res: Res; sinceStartMs: number }> = [];
		const started = Date.now();
		for (let i = 0; i < 2 * rate; i++) {
			const node = i % 2;
			const res = await me(node === 0 ? node1 : node2, key);
			results.push({ node, res, sinceStartMs: Date.now() - started });
		}
		const elapsedMs = Date.now() - started;

		const statuses = results.map((r) => r.res.status);
		expect(statuses.slice(0, rate)).toEqual([200, 200, 200, 200]);
		// One bucket for both nodes: at most `rate` requests plus what refilled meanwhile.
		const allowed = statuses.filter((s) => s === 200).length;
		expect(allowed).toBeLessThanOrEqual(rate + Math.floor((elapsedMs * rate) / 1000));
		expect(allowed).toBeLessThan(2 * rate);
		const refused = results.filter((r) => r.res.status === 429);
		expect(refused.length).toBeGreaterThan(0);
		for (const { res } of refused) {
			expectApiError(res, 429, "RATE_LIMITED");
			expect(Number(res.headers.get("retry-after"))).toBeGreaterThanOrEqual(1);
			expect(res.headers.get("x-ratelimit-limit")).toBe(String(rate));
		}
		// The remaining count falls across nodes: each node sees what the other spent (separate buckets
		// would answer 3, 3, 2, 2), give or take what refilled meanwhile.
		results.slice(0, rate).forEach(({ res, sinceStartMs }, i) => {
			const shared = Math.min(rate - 1, Math.floor(rate - 1 - i + (sinceStartMs * rate) / 1000));
			expect({ request: i + 1, remaining: Number(res.headers.get("x-ratelimit-remaining")) <= shared }).toEqual({ request: i + 1, remaining: true });
		});
	});
});
