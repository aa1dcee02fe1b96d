/**
 * Identity across real nodes: two api nodes (each with its own auth caches) and a worker, sharing
 * MariaDB and Redis. One rate limit for both; a revoked key or grant holds on the other node within
 * a second.
 */
import { QueryTypes } from "sequelize";
import { openDatabase, type Database } from "../../lib/db/connection";
import { http } from "../support/harness";
import { insertBot, insertChat } from "../support/database";
import { startCluster, type Cluster } from "./support/cluster";

const WORKER_SERVICES = ["auth", "bots", "chats", "ingest", "broker", "delivery"];

async function within(ms: number, check: () => Promise<boolean>): Promise<number> {
	const started = Date.now();
	while (Date.now() - started < ms + 2_000) {
		if (await check()) return Date.now() - started;
		await new Promise((r) => setTimeout(r, 25));
	}
	throw new Error(`condition not met within ${ms + 2_000} ms`);
}

describe("identity across two api nodes", () => {
	let cluster: Cluster;
	let db: Database;
	let a: string;
	let b: string;
	let adminToken: string;

	const json = (token: string) => ({ authorization: `Bearer ${token}` });

	beforeAll(async () => {
		cluster = await startCluster([
			{ name: "api-a", services: ["api", "auth", "realtime"] },
			{ name: "api-b", services: ["api", "auth", "realtime"] },
			{ name: "worker", services: WORKER_SERVICES },
		]);
		a = cluster.node("api-a").baseUrl + "/api/v1";
		b = cluster.node("api-b").baseUrl + "/api/v1";
		db = await openDatabase(cluster.databaseUrl);
		const login = await http<{ access_token: string }>(a, "POST", "/auth/login", { body: { username: "admin", password: "cluster-admin-password" } });
		expect(login.status).toBe(200);
		adminToken = login.body.access_token;
	}, 120_000);

	afterAll(async () => {
		await db?.close();
		await cluster?.stop();
	});

	it("a token issued by one node is good on the other", async () => {
		const me = await http(b, "GET", "/auth/me", { headers: json(adminToken) });
		expect(me.status).toBe(200);
		expect(me.body).toMatchObject({ type: "user", username: "admin" });
	});

	it("one rate limit for a key, whichever node the requests reach", async () => {
		const created = await http<{ key: string }>(a, "POST", "/apikeys", { headers: json(adminToken), body: { name: "limited", rate_limit: 5 } });
		expect(created.status).toBe(201);
		const statuses: number[] = [];
		for (let i = 0; i < 12; i++) {
			const res = await http(i % 2 ? a : b, "GET", "/auth/me", { headers: { "x-api-key": created.body.key } });
			statuses.push(res.status);
		}
		const allowed = statuses.filter((s) => s === 200).length;
		// A bucket of 5 refilling at 5/s: a dozen quick requests cannot all pass, on one node or two.
		expect(allowed).toBeGreaterThanOrEqual(5);
		expect(allowed).toBeLessThanOrEqual(7);
		expect(statuses).toContain(429);
	});

	it("a key revoked through node A is refused by node B within one second", async () => {
		const created = await http<{ id: number; key: string }>(a, "POST", "/apikeys", { headers: json(adminToken), body: { name: "to-revoke" } });
		const viaB = () => http(b, "GET", "/auth/me", { headers: { "x-api-key": created.body.key } });
		expect((await viaB()).status).toBe(200); // B has it cached now
		const revoked = await http(a, "DELETE", `/apikeys/${created.body.id}`, { headers: json(adminToken) });
		expect(revoked.status).toBe(204);
		const elapsed = await within(1_000, async () => (await viaB()).status === 401);
		expect(elapsed).toBeLessThanOrEqual(1_000);
	});

	it("a grant revoked through node A is enforced by node B within one second", async () => {
		const bot = await insertBot(db);
		const chat = await insertChat(db, bot.id, 777, "group");
		const operator = await http<{ id: number }>(a, "POST", "/users", {
			headers: json(adminToken),
			body: { username: "operator1", password: "operator-password", roles: ["operator"] },
		});
		expect(operator.status).toBe(201);
		const grant = await http<{ id: number }>(a, "PUT", `/chats/${chat.id}/permissions`, {
			headers: json(adminToken),
			body: { user_id: operator.body.id, can_read: true, can_manage: true },
		});
		expect(grant.status).toBe(201);
		const login = await http<{ access_token: string }>(b, "POST", "/auth/login", { body: { username: "operator1", password: "operator-password" } });
		const viaB = () => http(b, "GET", `/chats/${chat.id}/permissions`, { headers: json(login.body.access_token) });
		expect((await viaB()).status).toBe(200);
		expect((await http(a, "DELETE", `/chats/${chat.id}/permissions/${grant.body.id}`, { headers: json(adminToken) })).status).toBe(204);
		const elapsed = await within(1_000, async () => (await viaB()).status === 403);
		expect(elapsed).toBeLessThanOrEqual(1_000);
	});

	it("login finds a user by exactly its name: MariaDB's collation does not let an accented or full-width spelling in (each would have its own lockout counter)", async () => {
		const created = await http(a, "POST", "/users", { body: { username: "victim", password: "victim-password-1", roles: ["viewer"] }, headers: json(adminToken) });
		expect(created.status).toBe(201);
		for (const spelling of ["vìctim", "ｖｉｃｔｉｍ"]) {
			const res = await http(b, "POST", "/auth/login", { body: { username: spelling, password: "victim-password-1" } });
			expect(res.status).toBe(401);
		}
		expect((await http(b, "POST", "/auth/login", { body: { username: "Victim", password: "victim-password-1" } })).status).toBe(200);
	});

	it("login attempts from one address are counted across both nodes", async () => {
		const statuses: number[] = [];
		for (let i = 0; i < 12; i++) {
			const res = await http(i % 2 ? a : b, "POST", "/auth/login", { body: { username: "nobody", password: "wrong-password" } });
			statuses.push(res.status);
		}
		// Earlier tests logged in from this address too: the limit (10/min) is hit by the 12th at the latest.
		expect(statuses.slice(-1)).toEqual([429]);
		expect(statuses.filter((s) => s === 401).length).toBeLessThanOrEqual(10);
	});

	// Last: it disables the admin whose token the other tests use.
	it("two admins disabling each other at once through the two nodes leave one admin, not none", async () => {
		const second = await http<{ id: number }>(a, "POST", "/users", {
			headers: json(adminToken),
			body: { username: "admin2", password: "second-admin-password", roles: ["admin"] },
		});
		expect(second.status).toBe(201);
		const activeAdmins = async () =>
			(await db.sequelize.query<{ id: number }>(
				"SELECT u.id FROM users u JOIN user_roles ur ON ur.user_id = u.id JOIN roles r ON r.id = ur.role_id WHERE r.name = 'admin' AND u.is_active = 1",
				{ type: QueryTypes.SELECT },
			)).map((row) => Number(row.id));
		const admins = await activeAdmins();
		expect(admins).toHaveLength(2);
		// Both users' rows held from outside: each request has read and counted before either can write.
		let release!: () => void;
		let held!: () => void;
		const holding = new Promise<void>((resolve) => (held = resolve));
		const holder = db.transaction(async (t) => {
			await db.sequelize.query(`SELECT id FROM users WHERE id IN (${admins.join(", ")}) FOR UPDATE`, { transaction: t });
			held();
			await new Promise<void>((resolve) => (release = resolve));
		});
		await holding;
		const requests = admins.map((id, i) => http(i === 0 ? a : b, "PATCH", `/users/${id}`, { headers: json(adminToken), body: { is_active: false } }));
		const waiting = async () => {
			const [row] = await db.sequelize.query<{ n: number }>(
				"SELECT COUNT(*) AS n FROM information_schema.PROCESSLIST WHERE db = DATABASE() AND command IN ('Query', 'Execute') AND id <> CONNECTION_ID() AND info IS NOT NULL",
				{ type: QueryTypes.SELECT },
			);
			return Number(row!.n) >= 2;
		};
		await within(5_000, waiting).catch(() => undefined);
		release();
		await holder;
		const statuses = (await Promise.all(requests)).map((res) => res.status).sort();
		expect(statuses).toEqual([200, 409]);
		expect(await activeAdmins()).toHaveLength(1);
	});
});
