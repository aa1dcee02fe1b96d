/**
 * The chat ACL for a principal holding many grants: `auth.can` looks up the one (chat, principal)
 * grant instead of loading every grant the principal holds, and GET /chats lets the database filter
 * by the principal's grants instead of sending every readable chat id in the page query.
 */
import { QueryTypes } from "sequelize";
import type { Right } from "../../services/auth/grants";
import type { Principal } from "../../services/auth/principal";
import { insertBot } from "../support/database";
import type { TestGateway } from "../support/harness";
import { adminToken, api, createKey, createUser, resolvePrincipal, startAuthGateway, type TestUser } from "../support/auth";

const GRANTS = 2_000;

describe("ACL with many grants", () => {
	let gw: TestGateway;
	let admin: string;
	let reader: TestUser;
	let principal: Principal;
	/** Chats the reader holds can_read on, ids ascending. */
	let chatIds: number[];
	let statements: string[];
	let previousLogging: unknown;

	beforeAll(async () => {
		gw = await startAuthGateway({ nodes: [["api", "auth", "chats"]] });
		admin = await adminToken(gw);
		reader = await createUser(gw, admin, ["operator"]);
		principal = await resolvePrincipal(gw.broker, reader.token);
		const { db } = gw.runtime;
		const botId = Number((await insertBot(db)).id);
		const now = new Date().toISOString();
		// One statement each for the chats and the grants: thousands of creates would dominate the test.
		await db.sequelize.query(
			`WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ${GRANTS})
			 INSERT INTO chats (bot_id, telegram_id, type, created_at, updated_at) SELECT ${botId}, 8000000 + i, 'private', '${now}', '${now}' FROM n`,
		);
		await db.sequelize.query(
			`INSERT INTO chat_permissions (chat_id, user_id, can_read, can_send, can_manage, created_at, updated_at)
			 SELECT id, ${reader.id}, 1, 0, 0, '${now}', '${now}' FROM chats WHERE bot_id = ${botId}`,
		);
		const rows = await db.sequelize.query<{ id: number }>(`SELECT id FROM chats WHERE bot_id = ${botId} ORDER BY id`, { type: QueryTypes.SELECT });
		chatIds = rows.map((r) => Number(r.id));
		// Sequelize reads its `logging` option at each query: every statement the gateway runs lands here.
		previousLogging = sequelizeOptions().logging;
		sequelizeOptions().logging = (sql: string) => statements.push(sql);
	}, 60_000);
	beforeEach(() => {
		statements = [];
	});
	afterAll(async () => {
		sequelizeOptions().logging = previousLogging;
		await gw.stop();
	});

	const sequelizeOptions = () => (gw.runtime.db.sequelize as unknown as { options: { logging: unknown } }).options;
	const can = (who: Principal, chatId: number, right: Right) =>
		gw.broker.call<boolean, { chat_id: number; right: Right }>("auth.can", { chat_id: chatId, right }, { meta: { principal: who } });
	const grantReads = () => statements.filter((sql) => /chat_permissions/.test(sql));

	it("auth.can reads the one grant of that chat, however many the principal holds", async () => {
		const chat = chatIds[GRANTS / 2]!;
		expect(await can(principal, chat, "can_read")).toBe(true);
		expect(await can(principal, chat, "can_send")).toBe(false);
		const reads = grantReads();
		// One lookup answers every right on that chat (cached per principal and chat).
		expect(reads).toHaveLength(1);
		expect(reads[0]).toMatch(new RegExp(`chat_id\`? = ${chat}\\b`));
		expect(reads[0]).toMatch(new RegExp(`user_id\`? = ${reader.id}\\b`));
	});

	it("a revocation reaches the cached answer for that chat at once, and leaves the others' alone", async () => {
		const [chat, other] = [chatIds[1]!, chatIds[2]!];
		expect(await can(principal, chat, "can_read")).toBe(true);
		expect(await can(principal, other, "can_read")).toBe(true);
		const row = await gw.runtime.db.models.ChatPermission.findOne({ where: { chat_id: chat, user_id: reader.id } });
		expect((await api(gw.baseUrl, "DELETE", `/chats/${chat}/permissions/${row!.id}`, admin)).status).toBe(204);
		expect(await can(principal, chat, "can_read")).toBe(false);
		expect(await can(principal, other, "can_read")).toBe(true);
	});

	it("a key of that user is bound by its own grants, not its owner's, on the same lookup path", async () => {
		const key = await createKey(gw.baseUrl, reader.token, { scopes: ["chats:read"] });
		const keyPrincipal = await resolvePrincipal(gw.broker, key.key);
		const chat = chatIds[10]!;
		expect(await can(keyPrincipal, chat, "can_read")).toBe(false);
		expect((await api(gw.baseUrl, "PUT", `/chats/${chat}/permissions`, admin, { api_key_id: key.id, can_read: true })).status).toBe(201);
		expect(await can(keyPrincipal, chat, "can_read")).toBe(true);
		expect(await can(keyPrincipal, chatIds[11]!, "can_read")).toBe(false);
		const listed = await api(gw.baseUrl, "GET", "/chats", key.key);
		expect(listed.status).toBe(200);
		expect((listed.body.data as Array<{ id: number }>).map((c) => c.id)).toEqual([chat]);
	});

	it("GET /chats pages through every readable chat without putting the ids in the query", async () => {
		const seen: number[] = [];
		let cursor: string | null = null;
		do {
			const query: string = cursor ? `?limit=200&cursor=${encodeURIComponent(cursor)}` : "?limit=200";
			const page = await api(gw.baseUrl, "GET", `/chats${query}`, reader.token);
			expect(page.status).toBe(200);
			seen.push(...(page.body.data as Array<{ id: number }>).map((c) => c.id));
			cursor = page.body.next_cursor as string | null;
		} while (cursor);
		// chatIds[1] was revoked above.
		expect(seen).toEqual(chatIds.filter((id) => id !== chatIds[1]));
		const pageQueries = statements.filter((sql) => /FROM `chats`/.test(sql));
		expect(pageQueries.length).toBeGreaterThan(0);
		for (const sql of pageQueries) {
			expect(sql.length).toBeLessThan(2_000);
			expect(sql).toMatch(/chat_permissions/);
		}
	});
});
