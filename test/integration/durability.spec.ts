/**
 * Durability of the embedded gateway (SQLite) under faults: a full disk, a process killed mid-request,
 * Telegram redelivering old updates or answering oddly. Real gateway processes (bin/gateway.ts) on a
 * temporary DATA_DIR, the Telegram double on loopback. The disk-full cases put DATA_DIR on a small
 * tmpfs mounted for the test (they need CAP_SYS_ADMIN, i.e. root in a container; skipped otherwise).
 */
import { execFileSync } from "node:child_process";
import { rmSync } from "node:fs";
import { join } from "node:path";
import { DatabaseError } from "sequelize";
import { Database as SqliteDb } from "sqlite3";
import { toApiError } from "../../lib/errors";
import { tempDir } from "../support/harness";
import { freePort, spawnGateway, type GatewayProcess } from "../support/processes";
import { TelegramDouble } from "../support/telegram-double";

const ADMIN_PASSWORD = "admin-password-for-durability";

interface Proc {
	gw: GatewayProcess;
	base: string;
}

async function startProc(name: string, dataDir: string, port: number, root: string, mode: "webhook" | "polling", extra: Record<string, string> = {}): Promise<Proc> {
	const base = `http://127.0.0.1:${port}`;
	const gw = spawnGateway(name, {
		DATA_DIR: dataDir,
		PORT: String(port),
		GRPC_PORT: "0",
		HOST: "127.0.0.1",
		ADMIN_PASSWORD,
		TELEGRAM_API_ROOT: root,
		RATE_LIMIT_DEFAULT: "100000",
		WEBHOOK_ALLOW_PRIVATE: "true",
		LOG_LEVEL: "info",
		...(mode === "webhook" ? { PUBLIC_URL: base } : {}),
		...extra,
	});
	try {
		await gw.waitForOutput(/Gateway node .* ready/, 60_000);
	} catch (err) {
		gw.kill("SIGKILL");
		throw err;
	}
	return { gw, base };
}

async function stopProc(proc: Proc | undefined, signal: NodeJS.Signals = "SIGKILL"): Promise<void> {
	if (!proc) return;
	if (proc.gw.child.exitCode === null && proc.gw.child.signalCode === null) proc.gw.kill(signal);
	await proc.gw.exited;
}

async function json<T = Record<string, unknown>>(base: string, method: string, path: string, body?: unknown, token?: string): Promise<{ status: number; body: T }> {
	const res = await fetch(base + path, {
		method,
		headers: { ...(body !== undefined ? { "content-type": "application/json" } : {}), ...(token ? { authorization: `Bearer ${token}` } : {}) },
		body: body === undefined ? undefined : JSON.stringify(body),
	});
	const text = await res.text();
	let parsed: unknown = text;
	try {
		parsed = text ? JSON.parse(text) : undefined;
	} catch {
		// not JSON
	}
	return { status: res.status, body: parsed as T };
}

async function login(base: string): Promise<string> {
	const res = await json<{ access_token: string }>(base, "POST", "/api/v1/auth/login", { username: "admin", password: ADMIN_PASSWORD });
	if (res.status !== 200) throw new Error(`login failed: ${res.status} ${JSON.stringify(res.body)}`);
	return res.body.access_token;
}

function query<T = Record<string, unknown>>(dataDir: string, sql: string, params: unknown[] = []): Promise<T[]> {
	return new Promise((resolve, reject) => {
		const db = new SqliteDb(join(dataDir, "gateway.sqlite"), (err) => {
			if (err) return reject(err);
			db.all(sql, params, (e, rows) => {
				db.close();
				if (e) reject(e);
				else resolve(rows as T[]);
			});
		});
	});
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function waitUntil(check: () => boolean | Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
	const deadline = Date.now() + timeoutMs;
	while (!(await check())) {
		if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
		await sleep(50);
	}
}

/** A tmpfs of `sizeMb` for DATA_DIR, or null when this process may not mount one. */
function mountTmpfs(sizeMb: number): string | null {
	const dir = tempDir("tgw-durability-mnt-");
	try {
		execFileSync("mount", ["-t", "tmpfs", "-o", `size=${sizeMb}m`, "tmpfs", dir], { stdio: "ignore" });
		return dir;
	} catch {
		rmSync(dir, { recursive: true, force: true });
		return null;
	}
}

function unmount(dir: string): void {
	try {
		execFileSync("umount", ["-l", dir], { stdio: "ignore" });
	} catch {
		// already gone
	}
	rmSync(dir, { recursive: true, force: true });
}

const CAN_MOUNT = (() => {
	const dir = mountTmpfs(1);
	if (!dir) return false;
	unmount(dir);
	return true;
})();
const itNeedsMount = CAN_MOUNT ? it : it.skip;

/** Fills the file system of `dir` (a filler file written until ENOSPC); returns a function that frees it. */
function fillDisk(dir: string): () => void {
	const filler = join(dir, "filler");
	try {
		execFileSync("dd", ["if=/dev/zero", `of=${filler}`, "bs=64k"], { stdio: "ignore" });
	} catch {
		// dd stops at ENOSPC: that is the point
	}
	return () => rmSync(filler, { force: true });
}

describe("the embedded gateway under faults", () => {
	const cleanup: Array<() => Promise<void> | void> = [];
	afterEach(async () => {
		for (const fn of cleanup.splice(0).reverse()) await fn();
	});

	/** A gateway process with one registered bot, on `dataDir`, and a chat a user wrote in. */
	async function setup(mode: "webhook" | "polling", dataDir: string) {
		const telegram = new TelegramDouble({ redeliveryDelayMs: 50, maxRedeliveryDelayMs: 300 });
		const root = await telegram.start();
		cleanup.push(() => telegram.stop());
		const port = await freePort();
		const ctx = { telegram, root, dataDir, port, proc: undefined as Proc | undefined, admin: "", token: "", botId: 0, chatId: 0 };
		ctx.proc = await startProc("gateway", dataDir, port, root, mode);
		cleanup.push(() => stopProc(ctx.proc));
		ctx.admin = await login(ctx.proc.base);
		ctx.token = telegram.addBot();
		const added = await json<{ id: number }>(ctx.proc.base, "POST", "/api/v1/bots", { token: ctx.token }, ctx.admin);
		expect(added.status).toBe(201);
		ctx.botId = added.body.id;
		telegram.userSends(ctx.token, { chat_id: 6000, text: "hello" });
		await waitUntil(async () => (await query(dataDir, "SELECT id FROM chats")).length === 1, 15_000, "the user's chat to be stored");
		ctx.chatId = Number((await query<{ id: number }>(dataDir, "SELECT id FROM chats"))[0]!.id);
		return ctx;
	}

	itNeedsMount(
		"a message Telegram accepted while the disk was full is sent once, and recorded as sent once the disk has room",
		async () => {
			const mnt = mountTmpfs(6)!;
			cleanup.push(() => unmount(mnt));
			const t = await setup("webhook", join(mnt, "data"));
			const text = "exactly once, disk full or not";
			// Telegram takes 2.5 s to answer; the disk fills up meanwhile, and has room again 5 s later.
			t.telegram.failNext("sendMessage", { delayMs: 2500 });
			const posted = json<{ id: number; status: string }>(t.proc!.base, "POST", `/api/v1/chats/${t.chatId}/messages`, { text }, t.admin);
			await waitUntil(() => (t.telegram.calls.sendMessage ?? 0) >= 1, 5_000, "the sendMessage to be in flight");
			const free = fillDisk(mnt);
			const res = await posted;
			expect([201, 202]).toContain(res.status);
			await sleep(5_000);
			free();
			await waitUntil(async () => (await query(t.dataDir, "SELECT message_id FROM outbound_queue")).length === 0, 40_000, "the queue to drain");
			await sleep(2_000);
			const sent = t.telegram.sent.filter((r) => r.text === text);
			expect(sent).toHaveLength(1);
			const [row] = await query<{ status: string; telegram_message_id: number }>(t.dataDir, "SELECT status, telegram_message_id FROM messages WHERE id = ?", [res.body.id]);
			expect(row).toMatchObject({ status: "sent", telegram_message_id: sent[0]!.message_id });
		},
		90_000,
	);

	itNeedsMount("POST /chats/:id/messages while the disk is full: 503 UNAVAILABLE once a send needs space, nothing of it queued", async () => {
		const mnt = mountTmpfs(6)!;
		cleanup.push(() => unmount(mnt));
		const t = await setup("webhook", join(mnt, "data"));
		const free = fillDisk(mnt);
		cleanup.push(free);
		// SQLite reuses the space of a write-ahead log it has checkpointed, so the first sends may
		// still fit: send 12 KB texts until one needs space the disk no longer has.
		const accepted: number[] = [];
		let refused: { status: number; body: { id?: number; error?: { code: string } } } | undefined;
		for (let i = 0; i < 60 && !refused; i++) {
			const res = await json<{ id?: number; error?: { code: string } }>(t.proc!.base, "POST", `/api/v1/chats/${t.chatId}/messages`, { text: `${i} ${"€".repeat(4_000)}` }, t.admin);
			if (res.status === 201 || res.status === 202) accepted.push(res.body.id!);
			else refused = res;
		}
		free();
		expect({ status: refused?.status, code: refused?.body.error?.code }).toEqual({ status: 503, code: "UNAVAILABLE" });
		const stored = await query<{ id: number }>(t.dataDir, "SELECT id FROM messages WHERE direction = 'outgoing' ORDER BY id");
		expect(stored.map((row) => row.id)).toEqual(accepted);
	}, 60_000);

	it("a SQLite error that means the disk or file is away, under Sequelize's wrapper, is classified 503 UNAVAILABLE (portable check of the cause)", () => {
		for (const code of ["SQLITE_FULL", "SQLITE_IOERR", "SQLITE_BUSY", "SQLITE_READONLY", "SQLITE_CANTOPEN"]) {
			const driver = Object.assign(new Error(`${code}: simulated`), { code });
			const wrapped = new DatabaseError(driver as unknown as ConstructorParameters<typeof DatabaseError>[0]);
			expect([code, toApiError(wrapped).status]).toEqual([code, 503]);
		}
	});

	it("POST /bots when getMe answers ok:true with no usable bot in it: 503 UNAVAILABLE, no bot kept", async () => {
		const telegram = new TelegramDouble();
		const root = await telegram.start();
		cleanup.push(() => telegram.stop());
		const dataDir = tempDir("tgw-durability-");
		cleanup.push(() => rmSync(dataDir, { recursive: true, force: true }));
		const proc = await startProc("gateway", dataDir, await freePort(), root, "webhook");
		cleanup.push(() => stopProc(proc));
		const admin = await login(proc.base);
		const answers = [{ ok: true, result: null }, { ok: true }, { ok: true, result: "bot" }, { ok: true, result: {} }, { ok: true, result: { id: 123 } }];
		const outcomes: Array<[string, number]> = [];
		for (const answer of answers) {
			const token = telegram.addBot();
			telegram.failNext("getMe", { answer });
			const res = await json(proc.base, "POST", "/api/v1/bots", { token }, admin);
			outcomes.push([JSON.stringify(answer), res.status]);
		}
		expect(outcomes).toEqual(answers.map((a) => [JSON.stringify(a), 503]));
		expect(await query(dataDir, "SELECT id FROM bots")).toEqual([]);
	}, 60_000);

	it("long polling: getUpdates answering ok:true with updates it cannot use is retried with backoff, not in a busy loop", async () => {
		const dataDir = tempDir("tgw-durability-");
		cleanup.push(() => rmSync(dataDir, { recursive: true, force: true }));
		const t = await setup("polling", dataDir);
		// A result that is not a list of updates, or updates without an update_id: nothing to store, nothing moves the offset.
		const outcomes: Array<{ answer: string; calls_in_2s: number }> = [];
		for (const answer of [{ ok: true, result: [null] }, { ok: true, result: "not updates" }]) {
			t.telegram.failNext("getUpdates", { answer }, 100_000);
			t.telegram.userSends(t.token, { chat_id: 6000, text: "wakes the long poll" });
			await sleep(300);
			const before = t.telegram.calls.getUpdates ?? 0;
			await sleep(2_000);
			outcomes.push({ answer: JSON.stringify(answer), calls_in_2s: (t.telegram.calls.getUpdates ?? 0) - before });
			t.telegram.clearFaults();
			await sleep(2_500);
		}
		// With the poller's own backoff (1 s, 2 s, ...), two seconds hold a handful of calls, not hundreds.
		expect(outcomes.filter((o) => o.calls_in_2s > 5)).toEqual([]);
		// And it recovers: the update that woke it is stored.
		await waitUntil(async () => (await query(t.dataDir, "SELECT id FROM messages WHERE text = 'wakes the long poll'")).length >= 1, 35_000, "polling to recover");
	}, 90_000);

	it("long polling: a 429 from getUpdates is retried only after its retry_after", async () => {
		const dataDir = tempDir("tgw-durability-");
		cleanup.push(() => rmSync(dataDir, { recursive: true, force: true }));
		const t = await setup("polling", dataDir);
		const retryAfter = 4;
		await sleep(500); // the poller is in its next long poll by now
		const hanging = t.telegram.calls.getUpdates ?? 0;
		t.telegram.failNext("getUpdates", { status: 429, retry_after: retryAfter }, 1);
		t.telegram.userSends(t.token, { chat_id: 6000, text: "after the 429" });
		// The long poll in progress returns this update; the next getUpdates gets the 429.
		await waitUntil(() => (t.telegram.calls.getUpdates ?? 0) >= hanging + 1, 10_000, "the 429");
		const refusedAt = Date.now();
		await waitUntil(() => (t.telegram.calls.getUpdates ?? 0) >= hanging + 2, 10_000, "the retry");
		expect(Date.now() - refusedAt).toBeGreaterThanOrEqual(retryAfter * 1000 - 250);
	}, 60_000);

	it("an older edit redelivered after a newer one (a push that failed and came again) does not roll the message back", async () => {
		const dataDir = tempDir("tgw-durability-");
		cleanup.push(() => rmSync(dataDir, { recursive: true, force: true }));
		const t = await setup("webhook", dataDir);
		const original = t.telegram.userSends(t.token, { chat_id: 6000, text: "v0" });
		await waitUntil(async () => (await query(dataDir, "SELECT id FROM messages WHERE text = 'v0'")).length === 1, 10_000, "v0 stored");
		const message = original.message as { message_id: number; date: number; chat: unknown; from: unknown };
		const hook = t.telegram.bot(t.token).webhook!;
		const push = (updateId: number, editDate: number, text: string) =>
			fetch(hook.url, {
				method: "POST",
				headers: { "content-type": "application/json", "x-telegram-bot-api-secret-token": hook.secret_token! },
				body: JSON.stringify({ update_id: updateId, edited_message: { ...message, edit_date: editDate, text } }),
			}).then((r) => r.status);
		const base = original.update_id + 1_000;
		// Telegram made two edits; the first push (v1) failed, the second (v2) went through, then v1 came again.
		expect(await push(base + 2, message.date + 20, "v2")).toBe(200);
		expect(await push(base + 1, message.date + 10, "v1")).toBe(200);
		const [row] = await query<{ text: string }>(dataDir, "SELECT text FROM messages WHERE chat_id = ? AND telegram_message_id = ?", [t.chatId, message.message_id]);
		expect(row!.text).toBe("v2");
	}, 60_000);

	it("kill -9 while POST /bots waits for setWebhook: the bot is not registered, registering it again after the restart works and its updates arrive", async () => {
		const telegram = new TelegramDouble({ redeliveryDelayMs: 50, maxRedeliveryDelayMs: 300 });
		const root = await telegram.start();
		cleanup.push(() => telegram.stop());
		const dataDir = tempDir("tgw-durability-");
		cleanup.push(() => rmSync(dataDir, { recursive: true, force: true }));
		const port = await freePort();
		let proc: Proc | undefined = await startProc("first", dataDir, port, root, "webhook");
		cleanup.push(() => stopProc(proc));
		let admin = await login(proc.base);
		const token = telegram.addBot();
		telegram.failNext("setWebhook", { hang: true });
		const pending = json(proc.base, "POST", "/api/v1/bots", { token }, admin).catch(() => null);
		await waitUntil(() => (telegram.calls.setWebhook ?? 0) >= 1, 10_000, "setWebhook in flight");
		proc.gw.kill("SIGKILL");
		await proc.gw.exited;
		await pending;
		expect(telegram.bot(token).webhook).toBeNull();

		// Telegram never took the webhook: the bot is stored, but not as registered.
		expect(await query(dataDir, "SELECT is_active FROM bots")).toEqual([{ is_active: 0 }]);

		proc = await startProc("second", dataDir, port, root, "webhook");
		admin = await login(proc.base);
		// The operator tries again: the same bot, with its webhook set this time.
		const again = await json(proc.base, "POST", "/api/v1/bots", { token }, admin);
		expect(again.status).toBe(201);
		const update = telegram.userSends(token, { chat_id: 6200, text: "anyone there?" });
		const deadline = Date.now() + 5_000;
		let stored = 0;
		while (stored === 0 && Date.now() < deadline) {
			await sleep(200);
			stored = (await query(dataDir, "SELECT id FROM telegram_updates WHERE update_id = ?", [update.update_id])).length;
		}
		expect({ webhook_set: telegram.bot(token).webhook !== null, stored }).toEqual({ webhook_set: true, stored: 1 });
	}, 90_000);

	it("an older update redelivered after a newer one does not roll its chat's details back (title, username)", async () => {
		const dataDir = tempDir("tgw-durability-");
		cleanup.push(() => rmSync(dataDir, { recursive: true, force: true }));
		const t = await setup("webhook", dataDir);
		const hook = t.telegram.bot(t.token).webhook!;
		const push = (updateId: number, messageId: number, title: string) =>
			fetch(hook.url, {
				method: "POST",
				headers: { "content-type": "application/json", "x-telegram-bot-api-secret-token": hook.secret_token! },
				body: JSON.stringify({
					update_id: updateId,
					message: { message_id: messageId, date: 1_790_000_000 + messageId, chat: { id: -100_777, type: "supergroup", title }, from: { id: 42, is_bot: false, first_name: "A" }, text: title },
				}),
			}).then((r) => r.status);
		// The group was renamed between two messages; the push of the first failed and came again after the second.
		expect(await push(990_000_002, 2, "New name")).toBe(200);
		expect(await push(990_000_001, 1, "Old name")).toBe(200);
		const [chat] = await query<{ title: string }>(dataDir, "SELECT title FROM chats WHERE telegram_id = -100777");
		expect(chat!.title).toBe("New name");
	}, 60_000);
});
