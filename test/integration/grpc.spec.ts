/**
 * The gRPC server (proto/gateway.proto) against a real gateway and the Telegram double, through a
 * real @grpc/grpc-js client: credentials in metadata, the same actions and ACL as REST, errors as
 * status codes with x-error-code, server streams with since_seq replay (no gap, no duplicate at the
 * seam), revocation, deadlines, malformed input, health, reflection, and draining.
 */
import { dirname, join } from "node:path";
import * as grpc from "@grpc/grpc-js";
import { loadSync, type Options } from "@grpc/proto-loader";
import { protoPath as healthProtoPath } from "grpc-health-check";
import type { EventFeed } from "../../services/broker/feed";
import type { SubscriptionHub } from "../../mixins/event-stream/subscription-hub";
import type { BotProto, ChatProto, MessageEventProto, MessageProto } from "../../services/grpc/codec";
import { createUser, loginAction, pollUntil, sleep, type TestUser } from "../support/auth";
import { sentWithText, userWrites, type ChatBody, type MessageBody, type Page } from "../support/chat-helpers";
import { GRPC_SERVICE_OF } from "../support/hostile-grpc";
import { freePort } from "../support/processes";
import { startTelegramGateway, type TelegramGateway } from "../support/telegram-gateway";

const ROOT = join(__dirname, "..", "..");
const OPTIONS: Options = { keepCase: true, longs: Number, enums: String, defaults: true, oneofs: true };
const gateway = loadSync(join(ROOT, "proto", "gateway.proto"), OPTIONS);
const health = loadSync(healthProtoPath, OPTIONS);
const reflection = loadSync(join(dirname(require.resolve("@grpc/reflection")), "..", "proto", "grpc", "reflection", "v1", "reflection.proto"), OPTIONS);

type Json = Record<string, unknown>;
type Method = grpc.MethodDefinition<object, Json>;

function method(name: string): Method {
	return (gateway[`gateway.v1.${GRPC_SERVICE_OF[name]}`] as grpc.ServiceDefinition)[name] as Method;
}

/** Metadata with a credential: a Bearer token (default), an x-api-key, or a raw authorization value. */
function creds(credential?: string, how: "bearer" | "x-api-key" | "raw" = "bearer"): grpc.Metadata {
	const md = new grpc.Metadata();
	if (credential === undefined) return md;
	if (how === "x-api-key") md.set("x-api-key", credential);
	else md.set("authorization", how === "raw" ? credential : `Bearer ${credential}`);
	return md;
}

interface Outcome<T> {
	value?: T;
	error?: grpc.ServiceError;
}

/** The API error code and details a failed call carries in its trailing metadata. */
function apiError(error: grpc.ServiceError | undefined): { code: number | undefined; apiCode: unknown; details?: Json; message?: string } {
	const details = error?.metadata.get("x-error-details")[0];
	return {
		code: error?.code,
		apiCode: error?.metadata.get("x-error-code")[0],
		...(typeof details === "string" ? { details: JSON.parse(details) as Json } : {}),
		message: error?.details,
	};
}

/** Asserts an error status, its x-error-code, and that nothing internal leaked into it. */
function expectStatus(outcome: Outcome<unknown>, code: grpc.status, apiCode?: string): Json | undefined {
	const error = apiError(outcome.error);
	expect({ code: error.code, apiCode: error.apiCode }).toEqual({ code, apiCode });
	expect(error.message?.length).toBeGreaterThan(0);
	expect(`${error.message} ${JSON.stringify(error.details ?? {})}`).not.toMatch(/\n\s+at |SELECT |INSERT |sqlite|\.ts:\d+/i);
	return error.details;
}

/** Every stream a test opens, cancelled after it (an open stream would hold the final drain). */
const openStreams: StreamProbe[] = [];

class StreamProbe {
	readonly events: MessageEventProto[] = [];
	status?: grpc.StatusObject;
	/** The response headers: the server sends them once the subscription is authorised. */
	subscribed = false;
	readonly ended: Promise<grpc.StatusObject>;

	constructor(readonly call: grpc.ClientReadableStream<MessageEventProto>) {
		openStreams.push(this);
		call.on("metadata", () => (this.subscribed = true));
		call.on("data", (event: MessageEventProto) => this.events.push(event));
		call.on("error", () => undefined); // the status below says it all
		this.ended = new Promise((resolve) =>
			call.on("status", (status: grpc.StatusObject) => {
				this.status = status;
				resolve(status);
			}),
		);
	}

	/** Resolves once `predicate` holds for the events so far; fails after `timeoutMs`. */
	async waitFor(predicate: (events: MessageEventProto[]) => boolean, timeoutMs = 5_000): Promise<void> {
		const took = await pollUntil(async () => predicate(this.events) || this.status !== undefined, timeoutMs, 20);
		if (!predicate(this.events)) {
			throw new Error(`stream: condition not met (took ${took}); status ${JSON.stringify(this.status?.details)} ${this.status?.code}; events ${JSON.stringify(this.events.map((e) => [e.seq, e.chat_id, e.type]))}`);
		}
	}

	async end(timeoutMs = 5_000): Promise<grpc.StatusObject> {
		let timer: NodeJS.Timeout | undefined;
		const timeout = new Promise<never>((_resolve, reject) => {
			timer = setTimeout(() => reject(new Error(`stream did not end within ${timeoutMs} ms`)), timeoutMs);
		});
		try {
			return await Promise.race([this.ended, timeout]);
		} finally {
			clearTimeout(timer);
		}
	}

	/** Resolves once the server has confirmed the subscription (its response headers arrived). */
	async whenSubscribed(timeoutMs = 5_000): Promise<void> {
		if ((await pollUntil(async () => this.subscribed || this.status !== undefined, timeoutMs, 10)) === null || !this.subscribed) {
			throw new Error(`stream not subscribed: ${this.status?.code} ${this.status?.details}`);
		}
	}

	texts(): string[] {
		return this.events.map((e) => e.message?.text ?? "");
	}
}

describe("gRPC", () => {
	let t: TelegramGateway;
	let client: grpc.Client;
	let grpcPort: number;
	let admin: string;
	let bot: { id: number; token: string };
	let chatA: number;
	let chatB: number;
	let viewer: TestUser;
	let chatCounter = 8_000;

	const rpc = <T = Json>(name: string, request: object, md: grpc.Metadata = creds(admin), options: grpc.CallOptions = {}): Promise<Outcome<T>> => {
		const m = method(name);
		return new Promise((resolve) => {
			client.makeUnaryRequest(m.path, m.requestSerialize, m.responseDeserialize, request, md, options, (error, value) =>
				resolve(error ? { error } : { value: value as T }),
			);
		});
	};

	const stream = (name: string, request: object, md: grpc.Metadata = creds(admin), options: grpc.CallOptions = {}): StreamProbe => {
		const m = method(name) as unknown as grpc.MethodDefinition<object, MessageEventProto>;
		return new StreamProbe(client.makeServerStreamRequest(m.path, m.requestSerialize, m.responseDeserialize, request, md, options));
	};

	const grpcService = () =>
		t.gw.broker.getLocalService("grpc") as unknown as { hub: SubscriptionHub; feed: EventFeed; port?: number; drain(timeoutMs?: number): Promise<void> };

	/** A new private chat of the bot, with the double's user writing `texts` to it. */
	const newChat = async (...texts: string[]): Promise<{ chatId: number; telegramId: number; messages: MessageBody[] }> => {
		chatCounter += 1;
		const telegramId = chatCounter;
		const messages: MessageBody[] = [];
		let chatId = 0;
		for (const text of texts) {
			const written = await userWrites(t, bot.token, bot.id, { chat_id: telegramId, text });
			chatId = written.chatId;
			messages.push(written.message);
		}
		return { chatId, telegramId, messages };
	};

	const write = async (telegramId: number, text: string) => (await userWrites(t, bot.token, bot.id, { chat_id: telegramId, text })).message;

	const grant = async (chatId: number, body: Json) => {
		const res = await t.api("PUT", `/chats/${chatId}/permissions`, body);
		expect([200, 201]).toContain(res.status);
	};

	let telegramA: number;
	let telegramB: number;

	beforeAll(async () => {
		grpcPort = await freePort();
		t = await startTelegramGateway({ mode: "webhook", env: { GRPC_PORT: String(grpcPort) } });
		admin = t.adminToken;
		client = new grpc.Client(`127.0.0.1:${grpcPort}`, grpc.credentials.createInsecure());
		const added = await t.addBot({ username: "grpc_bot" });
		bot = { id: added.bot.id, token: added.token };
		({ chatId: chatA, telegramId: telegramA } = await newChat("a1", "a2", "a3"));
		({ chatId: chatB, telegramId: telegramB } = await newChat("b1"));
		viewer = await createUser(t.gw, admin, ["viewer"]);
		await grant(chatA, { user_id: viewer.id, can_read: true });
	}, 60_000);

	afterEach(async () => {
		for (const probe of openStreams.splice(0)) probe.call.cancel();
		t.telegram.clearFaults();
		// Each test starts with no stream open on the server.
		await pollUntil(async () => grpcService().hub.connectionCount === 0, 2_000, 10);
	});

	afterAll(async () => {
		client?.close();
		await t?.stop();
	});

	describe("credentials", () => {
		it.each([
			["no credentials", creds()],
			["an invalid token", creds("not-a-jwt")],
			["an unknown API key", creds("tgw_0123456789abcdef0123456789abcdef", "x-api-key")],
			["an authorization that is not Bearer", creds("Basic dXNlcjpwYXNz", "raw")],
		])("%s: UNAUTHENTICATED (x-error-code UNAUTHORIZED) on unary RPCs and streams", async (_name, md) => {
			expectStatus(await rpc("ListChats", {}, md), grpc.status.UNAUTHENTICATED, "UNAUTHORIZED");
			expectStatus(await rpc("GetBot", { id: bot.id }, md), grpc.status.UNAUTHENTICATED, "UNAUTHORIZED");
			const probe = stream("StreamMessages", { since_seq: 0 }, md);
			const status = await probe.end();
			expect(status.code).toBe(grpc.status.UNAUTHENTICATED);
			expect(status.metadata.get("x-error-code")).toEqual(["UNAUTHORIZED"]);
			expect(probe.events).toEqual([]);
		});

		it("an API key works as x-api-key and as Bearer; its rate_limit is charged as on REST: RESOURCE_EXHAUSTED", async () => {
			const created = await t.api<{ key: string }>("POST", "/apikeys", { name: "grpc-limited", rate_limit: 1 });
			expect(created.status).toBe(201);
			const key = created.body.key;
			const first = await rpc<{ bots: BotProto[] }>("ListBots", {}, creds(key, "x-api-key"));
			expect(first.error).toBeUndefined();
			expect(first.value!.bots.map((b) => b.id)).toContain(bot.id);
			const refused = await rpc("ListBots", {}, creds(key));
			const details = expectStatus(refused, grpc.status.RESOURCE_EXHAUSTED, "RATE_LIMITED");
			expect(details).toEqual({ retry_after: expect.any(Number) });
			// The bucket is the one REST charges.
			const rest = await t.api("GET", "/bots", undefined, key);
			expect(rest.status).toBe(429);
			await sleep(1_100);
			expect((await rpc("ListBots", {}, creds(key, "x-api-key"))).error).toBeUndefined();
		});
	});

	describe("unary RPCs: the REST actions, their shapes mapped to the proto", () => {
		const chatProto = (c: ChatBody): ChatProto => ({
			id: c.id,
			bot_id: c.bot_id,
			telegram_id: c.telegram_id,
			type: c.type,
			title: c.title ?? "",
			username: c.username ?? "",
			first_name: c.first_name ?? "",
			last_name: c.last_name ?? "",
			created_at: c.created_at,
			updated_at: c.updated_at,
			business_connection_id: c.business_connection_id ?? "",
			is_forum: c.is_forum,
			migrated_to_chat_id: c.migrated_to_chat_id ?? 0,
		});
		const messageProto = (m: MessageBody): MessageProto => ({
			id: m.id,
			seq: m.seq ?? 0,
			chat_id: m.chat_id,
			bot_id: m.bot_id,
			telegram_message_id: m.telegram_message_id ?? 0,
			direction: m.direction,
			type: m.type,
			text: m.text ?? "",
			caption: m.caption ?? "",
			entities_json: m.entities === null ? "" : JSON.stringify(m.entities),
			from: m.from && { telegram_id: m.from.telegram_id, username: m.from.username ?? "", first_name: m.from.first_name ?? "", last_name: m.from.last_name ?? "", is_bot: m.from.is_bot },
			reply_to_message_id: m.reply_to_message_id ?? 0,
			thread_id: m.thread_id ?? 0,
			media_json: m.media === null ? "" : JSON.stringify(m.media),
			date: m.date ?? "",
			edit_date: m.edit_date ?? "",
			status: m.status ?? "",
			error: m.error ?? "",
			error_details_json: m.error_details === undefined ? "" : JSON.stringify(m.error_details),
			media_group_id: m.media_group_id ?? "",
		});
		type BotBody = { id: number; username: string; telegram_id: number; display_name: string; description: string | null; mode: string; webhook_url: string | null; is_active: boolean; created_at: string; updated_at: string; last_error: string | null };
		const botProto = (b: BotBody): BotProto => ({
			id: b.id,
			username: b.username,
			telegram_id: b.telegram_id,
			display_name: b.display_name,
			description: b.description ?? "",
			mode: b.mode,
			webhook_url: b.webhook_url ?? "",
			is_active: b.is_active,
			created_at: b.created_at,
			updated_at: b.updated_at,
			last_error: b.last_error ?? "",
		});

		it("ListChats and GetChat answer what GET /chats and GET /chats/:id answer; bot_id, limit and cursor page alike", async () => {
			const rest = await t.api<Page<ChatBody>>("GET", "/chats?limit=200");
			const listed = await rpc<{ chats: ChatProto[]; next_cursor: string }>("ListChats", {});
			expect(listed.value).toEqual({ chats: rest.body.data.map(chatProto), next_cursor: "" });
			const byBot = await rpc<{ chats: ChatProto[] }>("ListChats", { bot_id: bot.id });
			expect(byBot.value!.chats.map((c) => c.id)).toEqual(expect.arrayContaining([chatA, chatB]));
			expect((await rpc<{ chats: ChatProto[] }>("ListChats", { bot_id: 987_654 })).value!.chats).toEqual([]);

			const first = await rpc<{ chats: ChatProto[]; next_cursor: string }>("ListChats", { limit: 1 });
			const restFirst = await t.api<Page<ChatBody>>("GET", "/chats?limit=1");
			expect(first.value!.chats).toEqual(restFirst.body.data.map(chatProto));
			expect(first.value!.next_cursor).toBe(restFirst.body.next_cursor);
			const second = await rpc<{ chats: ChatProto[] }>("ListChats", { limit: 1, cursor: first.value!.next_cursor });
			expect(second.value!.chats).toEqual((await t.api<Page<ChatBody>>("GET", `/chats?limit=1&cursor=${restFirst.body.next_cursor}`)).body.data.map(chatProto));

			const one = await rpc<ChatProto>("GetChat", { id: chatA });
			expect(one.value).toEqual(chatProto((await t.api<ChatBody>("GET", `/chats/${chatA}`)).body));
		});

		it("GetMessages: newest first as REST, oldest first from after_seq, before_seq and cursor as REST", async () => {
			const rest = await t.api<Page<MessageBody>>("GET", `/chats/${chatA}/messages`);
			const newest = await rpc<{ messages: MessageProto[]; next_cursor: string }>("GetMessages", { chat_id: chatA });
			expect(newest.value).toEqual({ messages: rest.body.data.map(messageProto), next_cursor: "" });
			expect(newest.value!.messages.map((m) => m.text).slice(-3)).toEqual(["a3", "a2", "a1"]);

			const oldest = await rpc<{ messages: MessageProto[] }>("GetMessages", { chat_id: chatA, after_seq: 0 });
			expect(oldest.value!.messages).toEqual((await t.api<Page<MessageBody>>("GET", `/chats/${chatA}/messages?after_seq=0`)).body.data.map(messageProto));
			expect(oldest.value!.messages.slice(0, 3).map((m) => m.text)).toEqual(["a1", "a2", "a3"]);

			const a2 = oldest.value!.messages[1]!;
			const before = await rpc<{ messages: MessageProto[] }>("GetMessages", { chat_id: chatA, before_seq: a2.seq });
			expect(before.value!.messages.map((m) => m.text)).toEqual(["a1"]);

			const page1 = await rpc<{ messages: MessageProto[]; next_cursor: string }>("GetMessages", { chat_id: chatA, after_seq: 0, limit: 2 });
			expect(page1.value!.messages.map((m) => m.text)).toEqual(["a1", "a2"]);
			expect(page1.value!.next_cursor).not.toBe("");
			const page2 = await rpc<{ messages: MessageProto[] }>("GetMessages", { chat_id: chatA, after_seq: 0, limit: 2, cursor: page1.value!.next_cursor });
			expect(page2.value!.messages[0]!.text).toBe("a3");
		});

		it("SendMessage sends through Telegram (queued false) and answers the stored message; an idempotency_key makes a retry safe", async () => {
			const { chatId, telegramId } = await newChat("send here");
			const sent = await rpc<{ message: MessageProto; queued: boolean }>("SendMessage", { chat_id: chatId, text: "<b>from gRPC</b>", parse_mode: "HTML", disable_notification: true });
			expect(sent.error).toBeUndefined();
			expect(sent.value!.queued).toBe(false);
			const [record, ...more] = sentWithText(t, "<b>from gRPC</b>");
			expect(more).toEqual([]);
			expect(record!.params).toMatchObject({ chat_id: telegramId, parse_mode: "HTML", disable_notification: true });
			const stored = await t.api<MessageBody>("GET", `/messages/${sent.value!.message.id}`);
			expect(sent.value!.message).toEqual(messageProto(stored.body));
			expect(sent.value!.message).toMatchObject({ direction: "outgoing", status: "sent", chat_id: chatId, telegram_message_id: record!.message_id });

			const again = { chat_id: chatId, text: "exactly once", idempotency_key: "grpc-key-1" };
			const one = await rpc<{ message: MessageProto }>("SendMessage", again);
			const two = await rpc<{ message: MessageProto }>("SendMessage", again);
			expect(two.value!.message.id).toBe(one.value!.message.id);
			expect(sentWithText(t, "exactly once")).toHaveLength(1);
		});

		it("a REST send with disable_notification false and its gRPC retry (where false is the default) are one message; a key reused for another message names idempotency_key", async () => {
			const { chatId } = await newChat("cross retry");
			const rest = await t.api<MessageBody>("POST", `/chats/${chatId}/messages`, { text: "quiet or not", disable_notification: false }, undefined, { "idempotency-key": "cross-1" });
			expect(rest.status).toBe(201);
			const retried = await rpc<{ message: MessageProto }>("SendMessage", { chat_id: chatId, text: "quiet or not", disable_notification: false, idempotency_key: "cross-1" });
			expect(retried.value?.message.id).toBe(rest.body.id);
			const withoutIt = await t.api<MessageBody>("POST", `/chats/${chatId}/messages`, { text: "quiet or not" }, undefined, { "idempotency-key": "cross-1" });
			expect(withoutIt.body.id).toBe(rest.body.id);
			expect(sentWithText(t, "quiet or not")).toHaveLength(1);
			const reused = await rpc("SendMessage", { chat_id: chatId, text: "another text", idempotency_key: "cross-1" });
			expect(expectStatus(reused, grpc.status.ALREADY_EXISTS, "CONFLICT")).toEqual({ field: "idempotency_key" });
		});

		it("SendMessage while Telegram is slower than 5 s: queued true with status queued (REST's 202)", async () => {
			const { chatId } = await newChat("slow one");
			t.telegram.failNext("sendMessage", { delayMs: 6_500 });
			const res = await rpc<{ message: MessageProto; queued: boolean }>("SendMessage", { chat_id: chatId, text: "queued via gRPC" });
			expect(res.value).toMatchObject({ queued: true, message: { status: "queued", telegram_message_id: 0, seq: expect.any(Number) } });
			await t.telegram.waitFor(() => sentWithText(t, "queued via gRPC").length === 1, 10_000);
		}, 20_000);

		it("ListBots, GetBot, CreateBot and DeleteBot answer what the REST routes answer", async () => {
			const rest = await t.api<Page<BotBody>>("GET", "/bots");
			expect((await rpc("ListBots", {})).value).toEqual({ bots: rest.body.data.map(botProto), next_cursor: "" });
			expect((await rpc("GetBot", { id: bot.id })).value).toEqual(botProto((await t.api<BotBody>("GET", `/bots/${bot.id}`)).body));

			const token = t.telegram.addBot({ username: "grpc_created_bot" });
			const created = await rpc<BotProto>("CreateBot", { token, display_name: "Made over gRPC" });
			expect(created.error).toBeUndefined();
			expect(created.value).toMatchObject({ username: "grpc_created_bot", display_name: "Made over gRPC", description: "", mode: "webhook", is_active: true });
			expect(created.value!.webhook_url).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/api\/v1\/telegram\/webhook\/[0-9a-f]{64}$/);
			expect(created.value).toEqual(botProto((await t.api<BotBody>("GET", `/bots/${created.value!.id}`)).body));
			expect(JSON.stringify(created.value)).not.toContain(token.split(":")[1]);

			expectStatus(await rpc("CreateBot", { token }), grpc.status.ALREADY_EXISTS, "CONFLICT");
			const details = expectStatus(await rpc("CreateBot", { token: "not a token" }), grpc.status.INVALID_ARGUMENT, "VALIDATION_ERROR");
			expect(details).toMatchObject({ fields: [expect.objectContaining({ field: "token" })] });

			expect((await rpc("DeleteBot", { id: created.value!.id })).value).toEqual({});
			expect((await rpc<BotProto>("GetBot", { id: created.value!.id })).value!.is_active).toBe(false);
		});
	});

	describe("errors", () => {
		it("PERMISSION_DENIED (x-error-code FORBIDDEN) without the permission or without the chat grant, on every kind of RPC", async () => {
			const md = creds(viewer.token);
			expect((await rpc<ChatProto>("GetChat", { id: chatA }, md)).value!.id).toBe(chatA);
			expect((await rpc<{ chats: ChatProto[] }>("ListChats", {}, md)).value!.chats.map((c) => c.id)).toEqual([chatA]);
			expectStatus(await rpc("GetChat", { id: chatB }, md), grpc.status.PERMISSION_DENIED, "FORBIDDEN");
			expectStatus(await rpc("GetMessages", { chat_id: chatB }, md), grpc.status.PERMISSION_DENIED, "FORBIDDEN");
			expectStatus(await rpc("SendMessage", { chat_id: chatA, text: "viewers cannot send" }, md), grpc.status.PERMISSION_DENIED, "FORBIDDEN");
			expectStatus(await rpc("ListBots", {}, md), grpc.status.PERMISSION_DENIED, "FORBIDDEN");
			expectStatus(await rpc("CreateBot", { token: "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw" }, md), grpc.status.PERMISSION_DENIED, "FORBIDDEN");
			expectStatus(await rpc("DeleteBot", { id: bot.id }, md), grpc.status.PERMISSION_DENIED, "FORBIDDEN");
			const probe = stream("StreamChatMessages", { chat_id: chatB, since_seq: 0 }, md);
			const status = await probe.end();
			expect([status.code, status.metadata.get("x-error-code")]).toEqual([grpc.status.PERMISSION_DENIED, ["FORBIDDEN"]]);
			expect([probe.events, probe.subscribed]).toEqual([[], false]);
			expect(sentWithText(t, "viewers cannot send")).toEqual([]);
		});

		it("INVALID_ARGUMENT with x-error-code VALIDATION_ERROR naming the proto's fields, or BAD_REQUEST", async () => {
			const empty = expectStatus(await rpc("SendMessage", { chat_id: chatA, text: "" }), grpc.status.INVALID_ARGUMENT, "VALIDATION_ERROR");
			expect(empty).toEqual({ fields: [expect.objectContaining({ field: "text" })] });
			const long = expectStatus(await rpc("SendMessage", { chat_id: chatA, text: "x".repeat(4097) }), grpc.status.INVALID_ARGUMENT, "VALIDATION_ERROR");
			expect(long).toEqual({ fields: [expect.objectContaining({ field: "text" })] });
			const noChat = await rpc("SendMessage", { text: "where to?" });
			expect(expectStatus(noChat, grpc.status.INVALID_ARGUMENT, "VALIDATION_ERROR")).toEqual({ fields: [expect.objectContaining({ field: "chat_id", message: expect.stringContaining("'chat_id'") })] });
			expect(noChat.error!.details).toBe("Invalid chat_id");
			expect(expectStatus(await rpc("SendMessage", { chat_id: chatA, text: "hi", parse_mode: "html5" }), grpc.status.INVALID_ARGUMENT, "VALIDATION_ERROR")).toEqual({
				fields: [expect.objectContaining({ field: "parse_mode" })],
			});
			expectStatus(await rpc("SendMessage", { chat_id: chatA, text: "hi", idempotency_key: "has spaces" }), grpc.status.INVALID_ARGUMENT, "BAD_REQUEST");
			expect(expectStatus(await rpc("GetMessages", { chat_id: chatA, limit: -1 }), grpc.status.INVALID_ARGUMENT, "VALIDATION_ERROR")).toEqual({
				fields: [expect.objectContaining({ field: "limit" })],
			});
			expectStatus(await rpc("GetChat", {}), grpc.status.INVALID_ARGUMENT, "VALIDATION_ERROR");
			expectStatus(await rpc("GetChat", { id: -4 }), grpc.status.INVALID_ARGUMENT, "VALIDATION_ERROR");
			expectStatus(await rpc("ListChats", { cursor: "!!not-a-cursor!!" }), grpc.status.INVALID_ARGUMENT, "VALIDATION_ERROR");
			for (const request of [{ chat_id: 0, since_seq: 0 }, { chat_id: chatA, since_seq: -1 }]) {
				const status = await stream("StreamChatMessages", request).end();
				expect([status.code, status.metadata.get("x-error-code")]).toEqual([grpc.status.INVALID_ARGUMENT, ["VALIDATION_ERROR"]]);
			}
			expect(sentWithText(t, "hi")).toEqual([]);
		});

		it("NOT_FOUND for a chat or bot that does not exist", async () => {
			expectStatus(await rpc("GetChat", { id: 987_654 }), grpc.status.NOT_FOUND, "NOT_FOUND");
			expectStatus(await rpc("GetMessages", { chat_id: 987_654 }), grpc.status.NOT_FOUND, "NOT_FOUND");
			expectStatus(await rpc("SendMessage", { chat_id: 987_654, text: "nowhere" }), grpc.status.NOT_FOUND, "NOT_FOUND");
			expectStatus(await rpc("GetBot", { id: 987_654 }), grpc.status.NOT_FOUND, "NOT_FOUND");
			expectStatus(await rpc("DeleteBot", { id: 987_654 }), grpc.status.NOT_FOUND, "NOT_FOUND");
			const status = await stream("StreamChatMessages", { chat_id: 987_654 }).end();
			expect(status.code).toBe(grpc.status.NOT_FOUND);
			const byBot = await stream("StreamMessages", { bot_id: 987_654 }).end();
			expect(byBot.code).toBe(grpc.status.NOT_FOUND);
		});

		it("bytes that are not the method's message: INVALID_ARGUMENT (BAD_REQUEST), and the server keeps serving", async () => {
			const identity = (b: Buffer) => b;
			const raw = (name: string, bytes: Buffer) =>
				new Promise<Outcome<Buffer>>((resolve) => {
					client.makeUnaryRequest(method(name).path, identity, identity, bytes, creds(admin), {}, (error, value) => resolve(error ? { error } : { value: value! }));
				});
			const garbage = Buffer.from([0xff, 0xff, 0xff, 0xff, 0xff, 0xff]);
			expectStatus(await raw("GetChat", garbage), grpc.status.INVALID_ARGUMENT, "BAD_REQUEST");
			const valid = method("SendMessage").requestSerialize({ chat_id: chatA, text: "never sent: truncated" });
			expectStatus(await raw("SendMessage", valid.subarray(0, valid.length - 3)), grpc.status.INVALID_ARGUMENT, "BAD_REQUEST");
			// Another method's message: a field of the wrong wire type cannot be read as this one's.
			const wrongType = method("CreateBot").requestSerialize({ token: "12345:not-a-chat-request", display_name: "x" });
			expectStatus(await raw("GetChat", wrongType), grpc.status.INVALID_ARGUMENT, "BAD_REQUEST");
			const streamed = client.makeServerStreamRequest(method("StreamMessages").path, identity, identity, garbage, creds(admin), {});
			streamed.on("error", () => undefined);
			const streamStatus = await new Promise<grpc.StatusObject>((resolve) => streamed.on("status", resolve));
			expect(streamStatus.code).toBe(grpc.status.INVALID_ARGUMENT);
			// Still serving, and nothing was sent.
			expect((await rpc<ChatProto>("GetChat", { id: chatA })).value!.id).toBe(chatA);
			expect(sentWithText(t, "never sent: truncated")).toEqual([]);
		});
	});

	describe("streams", () => {
		it("StreamChatMessages with since_seq 0: the history in order, then live events exactly once, also one stored while the replay runs", async () => {
			const { chatId, telegramId, messages } = await newChat("r1", "r2", "r3");
			const broker = t.gw.broker;
			const original = broker.call.bind(broker);
			let held = false;
			let release!: () => void;
			const gate = new Promise<void>((resolve) => (release = resolve));
			// Hold the replay's first read of this chat until a new message is stored and broadcast: it is
			// then both in the log the replay reads and among the live events the hub holds meanwhile.
			const spy = jest.spyOn(broker, "call").mockImplementation(((action: string, params?: { chat_id?: number }, opts?: object) => {
				if (action === "broker.replay" && params?.chat_id === chatId && !held) {
					held = true;
					return gate.then(() => original(action, params, opts));
				}
				return original(action, params, opts);
			}) as typeof broker.call);
			let probe: StreamProbe;
			let during: MessageBody;
			try {
				probe = stream("StreamChatMessages", { chat_id: chatId, since_seq: 0 });
				expect(await pollUntil(async () => held, 5_000, 10)).not.toBeNull();
				during = await write(telegramId, "during the replay");
				expect(await pollUntil(async () => grpcService().feed.position >= during.seq!, 5_000, 10)).not.toBeNull();
				release();
				await probe.waitFor((events) => events.some((e) => e.message?.id === during.id));
			} finally {
				release();
				spy.mockRestore();
			}
			const live = await write(telegramId, "after the replay");
			await probe.waitFor((events) => events.some((e) => e.message?.id === live.id));
			await sleep(300); // a duplicate would have arrived by now

			const history = (await t.api<Page<MessageBody>>("GET", `/chats/${chatId}/messages?after_seq=0`)).body.data;
			expect(probe.texts()).toEqual(["r1", "r2", "r3", "during the replay", "after the replay"]);
			expect(probe.events.map((e) => e.seq)).toEqual(history.map((m) => m.seq));
			expect(probe.events.map((e) => e.message!.id)).toEqual([...messages.map((m) => m.id), during.id, live.id]);
			expect(probe.events[0]).toMatchObject({ type: "new_message", bot_id: bot.id, chat_id: chatId, update_kind: "", update_json: "", created_at: expect.stringMatching(/Z$/) });
			expect(probe.status).toBeUndefined();
		});

		it("since_seq N replays only what came after N; without since_seq only live events", async () => {
			const { chatId, telegramId, messages } = await newChat("s1", "s2", "s3");
			const after = stream("StreamChatMessages", { chat_id: chatId, since_seq: messages[0]!.seq });
			await after.waitFor((events) => events.length >= 2);
			const liveOnly = stream("StreamChatMessages", { chat_id: chatId });
			await liveOnly.whenSubscribed();
			expect(grpcService().hub.subscriptionCount).toBe(2);
			await write(telegramId, "s4");
			await liveOnly.waitFor((events) => events.length >= 1);
			await after.waitFor((events) => events.length >= 3);
			await sleep(200);
			expect(after.texts()).toEqual(["s2", "s3", "s4"]);
			expect(liveOnly.texts()).toEqual(["s4"]);
		});

		it("StreamMessages carries every kind of event of every readable chat: outgoing messages, edits and other updates (raw JSON)", async () => {
			const { chatId, telegramId, messages } = await newChat("kinds");
			const probe = stream("StreamMessages", { bot_id: bot.id, since_seq: messages[0]!.seq });
			const sent = await rpc<{ message: MessageProto }>("SendMessage", { chat_id: chatId, text: "outgoing kind" });
			t.telegram.userEdits(bot.token, { chat_id: telegramId, message_id: messages[0]!.telegram_message_id!, text: "kinds (edited)" });
			t.telegram.userClicks(bot.token, { chat_id: telegramId, message_id: sent.value!.message.telegram_message_id, data: "btn:1" });
			await probe.waitFor((events) => ["outgoing_message", "edited_message", "update"].every((type) => events.some((e) => e.type === type && e.chat_id === chatId)), 10_000);
			const byType = (type: string) => probe.events.find((e) => e.type === type && e.chat_id === chatId)!;
			expect(byType("outgoing_message").message).toMatchObject({ id: sent.value!.message.id, direction: "outgoing", text: "outgoing kind" });
			expect(byType("edited_message").message).toMatchObject({ id: messages[0]!.id, text: "kinds (edited)", edit_date: expect.stringMatching(/Z$/) });
			const update = byType("update");
			expect(update).toMatchObject({ update_kind: "callback_query", message: null, bot_id: bot.id });
			expect(JSON.parse(update.update_json)).toMatchObject({ update_id: expect.any(Number), callback_query: { data: "btn:1" } });
			const seqs = probe.events.map((e) => e.seq);
			expect(seqs).toEqual([...seqs].sort((a, b) => a - b));
			expect(new Set(seqs).size).toBe(seqs.length);
		});

		it("StreamMessages without can_read on a chat never receives that chat's events, replayed or live", async () => {
			const probe = stream("StreamMessages", { since_seq: 0 }, creds(viewer.token));
			await probe.waitFor((events) => events.filter((e) => e.chat_id === chatA).length >= 3);
			await write(telegramB, "b secret");
			const visible = await write(telegramA, "a visible");
			await probe.waitFor((events) => events.some((e) => e.message?.id === visible.id));
			await sleep(200);
			expect(new Set(probe.events.map((e) => e.chat_id))).toEqual(new Set([chatA]));
			expect(probe.texts()).not.toContain("b secret");
			expect(probe.texts()).not.toContain("b1");
		});

		it("a revoked grant ends StreamChatMessages with PERMISSION_DENIED and filters StreamMessages, within 1 s", async () => {
			const reader = await createUser(t.gw, admin, ["viewer"]);
			const c = await newChat("c1");
			const d = await newChat("d1");
			await grant(c.chatId, { user_id: reader.id, can_read: true });
			await grant(d.chatId, { user_id: reader.id, can_read: true });
			const md = creds(reader.token);
			const oneChat = stream("StreamChatMessages", { chat_id: c.chatId, since_seq: 0 }, md);
			const all = stream("StreamMessages", { since_seq: 0 }, md);
			await oneChat.waitFor((events) => events.length === 1);
			await all.waitFor((events) => events.length === 2);

			const revokedAt = Date.now();
			await grant(c.chatId, { user_id: reader.id, can_read: false });
			const status = await oneChat.end(2_000);
			expect(Date.now() - revokedAt).toBeLessThan(1_000);
			expect([status.code, status.metadata.get("x-error-code")]).toEqual([grpc.status.PERMISSION_DENIED, ["FORBIDDEN"]]);

			await sleep(Math.max(0, revokedAt + 1_000 - Date.now()));
			await write(c.telegramId, "c after revocation");
			const dLater = await write(d.telegramId, "d after revocation");
			await all.waitFor((events) => events.some((e) => e.message?.id === dLater.id));
			await sleep(200);
			expect(all.texts()).toEqual(["c1", "d1", "d after revocation"]);
			expect(all.status).toBeUndefined();
		});

		it("a logout ends the streams opened with that login's access token (UNAUTHENTICATED) within 1 s; another login's stream goes on", async () => {
			const reader = await createUser(t.gw, admin, ["viewer"]);
			const c = await newChat("logout-1");
			await grant(c.chatId, { user_id: reader.id, can_read: true });
			const leaving = await loginAction(t.gw.broker, reader.username, reader.password);
			const ending = stream("StreamChatMessages", { chat_id: c.chatId, since_seq: 0 }, creds(leaving.access_token));
			const staying = stream("StreamChatMessages", { chat_id: c.chatId, since_seq: 0 }, creds(reader.token));
			await ending.waitFor((events) => events.length === 1);
			await staying.waitFor((events) => events.length === 1);

			const loggedOutAt = Date.now();
			expect((await t.api("POST", "/auth/logout", { refresh_token: leaving.refresh_token })).status).toBe(204);
			const status = await ending.end(2_000);
			expect(Date.now() - loggedOutAt).toBeLessThan(1_000);
			expect(status.code).toBe(grpc.status.UNAUTHENTICATED);
			const later = await write(c.telegramId, "after logout");
			await staying.waitFor((events) => events.some((e) => e.message?.id === later.id));
			expect(staying.status).toBeUndefined();
		});

		it("a client deadline ends a stream with DEADLINE_EXCEEDED, and the server forgets it", async () => {
			const connections = grpcService().hub.connectionCount;
			expect(connections).toBe(0);
			const probe = stream("StreamChatMessages", { chat_id: chatA, since_seq: 0 }, creds(admin), { deadline: Date.now() + 800 });
			await probe.waitFor((events) => events.length >= 3);
			expect(grpcService().hub.connectionCount).toBe(1);
			const status = await probe.end(3_000);
			expect(status.code).toBe(grpc.status.DEADLINE_EXCEEDED);
			expect(await pollUntil(async () => grpcService().hub.connectionCount === connections, 2_000, 20)).not.toBeNull();
		});

		it("a unary deadline shorter than the action: DEADLINE_EXCEEDED at the deadline, not when the action ends", async () => {
			const { chatId } = await newChat("deadline");
			t.telegram.failNext("sendMessage", { delayMs: 3_000 });
			const started = Date.now();
			const res = await rpc("SendMessage", { chat_id: chatId, text: "past the deadline" }, creds(admin), { deadline: Date.now() + 1_000 });
			expect(res.error?.code).toBe(grpc.status.DEADLINE_EXCEEDED);
			expect(Date.now() - started).toBeLessThan(2_500);
			await t.telegram.waitFor(() => sentWithText(t, "past the deadline").length === 1, 10_000);
		}, 20_000);

		it("a cancelled stream is forgotten by the hub", async () => {
			const connections = grpcService().hub.connectionCount;
			const probe = stream("StreamMessages", { since_seq: 0 });
			await probe.waitFor((events) => events.length > 0);
			probe.call.cancel();
			expect(await pollUntil(async () => grpcService().hub.connectionCount === connections, 2_000, 20)).not.toBeNull();
		});
	});

	describe("health and reflection", () => {
		it("grpc.health.v1.Health answers SERVING for the server and each gateway service", async () => {
			const check = (health["grpc.health.v1.Health"] as grpc.ServiceDefinition).Check as grpc.MethodDefinition<object, { status: string }>;
			const ask = (service: string) =>
				new Promise<Outcome<{ status: string }>>((resolve) =>
					client.makeUnaryRequest(check.path, check.requestSerialize, check.responseDeserialize, { service }, new grpc.Metadata(), {}, (error, value) =>
						resolve(error ? { error } : { value: value! }),
					),
				);
			for (const service of ["", "gateway.v1.MessageService", "gateway.v1.ChatService", "gateway.v1.BotService"]) {
				expect((await ask(service)).value).toEqual({ status: "SERVING" });
			}
			expect((await ask("no.such.Service")).error?.code).toBe(grpc.status.NOT_FOUND);
		});

		it("a Watch of a name the server does not serve is answered SERVICE_UNKNOWN and ended, keeping nothing (made-up names piled up for good)", async () => {
			const watch = (health["grpc.health.v1.Health"] as grpc.ServiceDefinition).Watch as grpc.MethodDefinition<object, { status: string }>;
			const watchers = (grpcService() as unknown as { health: { watchers: Set<unknown> } }).health.watchers;
			for (const service of ["no.such.Service", "x".repeat(100_000)]) {
				const call = client.makeServerStreamRequest(watch.path, watch.requestSerialize, watch.responseDeserialize, { service }, new grpc.Metadata(), {});
				const statuses: string[] = [];
				call.on("data", (update: { status: string }) => statuses.push(update.status));
				const ended = await new Promise<grpc.StatusObject>((resolve) => call.on("status", resolve));
				expect([statuses, ended.code]).toEqual([["SERVICE_UNKNOWN"], grpc.status.OK]);
			}
			expect(watchers.size).toBe(0);
			// A known name is watched until the client cancels; then it is forgotten too.
			const call = client.makeServerStreamRequest(watch.path, watch.requestSerialize, watch.responseDeserialize, { service: "" }, new grpc.Metadata(), {});
			const statuses: string[] = [];
			call.on("data", (update: { status: string }) => statuses.push(update.status));
			call.on("error", () => undefined);
			expect(await pollUntil(async () => statuses.includes("SERVING"), 5_000, 10)).not.toBeNull();
			expect(watchers.size).toBe(1);
			call.cancel();
			expect(await pollUntil(async () => watchers.size === 0, 5_000, 10)).not.toBeNull();
		});

		/** Sends `requests` on one ServerReflectionInfo stream; resolves with an answer to each, in order. */
		async function reflect(requests: Json[]): Promise<Json[]> {
			const info = (reflection["grpc.reflection.v1.ServerReflection"] as grpc.ServiceDefinition).ServerReflectionInfo as grpc.MethodDefinition<object, Json>;
			const call = client.makeBidiStreamRequest(info.path, info.requestSerialize, info.responseDeserialize, new grpc.Metadata(), {});
			const responses: Json[] = [];
			call.on("data", (response: Json) => responses.push(response));
			call.on("error", () => undefined);
			for (const request of requests) call.write(request);
			expect(await pollUntil(async () => responses.length >= requests.length, 5_000, 10)).not.toBeNull();
			call.end();
			return responses;
		}

		it("server reflection lists the gateway's services and health, and describes them without the proto", async () => {
			const responses = await reflect([{ list_services: "*" }, { file_containing_symbol: "gateway.v1.MessageService" }]);
			const listed = (responses[0]!.list_services_response as { service: Array<{ name: string }> }).service.map((s) => s.name);
			expect(listed).toEqual(expect.arrayContaining(["gateway.v1.MessageService", "gateway.v1.ChatService", "gateway.v1.BotService", "grpc.health.v1.Health"]));
			const files = (responses[1]!.file_descriptor_response as { file_descriptor_proto: Buffer[] }).file_descriptor_proto;
			expect(files.length).toBeGreaterThan(0);
			const described = Buffer.concat(files).toString("latin1");
			for (const name of ["StreamChatMessages", "SendMessageRequest", "MessageEvent", "since_seq"]) expect(described).toContain(name);
		});

		it("server reflection answers NOT_FOUND for names that are only Object.prototype's members, and stays usable", async () => {
			const responses = await reflect([
				{ file_containing_symbol: "constructor" },
				{ file_containing_symbol: "__proto__" },
				{ file_by_filename: "toString" },
				{ all_extension_numbers_of_type: "hasOwnProperty" },
				{ file_containing_extension: { containing_type: "valueOf", extension_number: 1 } },
				{ file_containing_symbol: "gateway.v1.ChatService" },
			]);
			expect(responses).toHaveLength(6);
			for (const response of responses.slice(0, -1)) {
				expect(response.error_response).toEqual(expect.objectContaining({ error_code: grpc.status.NOT_FOUND }));
			}
			const files = (responses.at(-1)!.file_descriptor_response as { file_descriptor_proto: Buffer[] }).file_descriptor_proto;
			expect(Buffer.concat(files).toString("latin1")).toContain("ListChats");
		});
	});

	// Last: it shuts the server down.
	describe("drain", () => {
		it("ends live streams with UNAVAILABLE, reports NOT_SERVING, lets a unary call in flight finish, then takes no calls", async () => {
			const probe = stream("StreamChatMessages", { chat_id: chatA, since_seq: 0 });
			await probe.waitFor((events) => events.length >= 3);
			const watch = (health["grpc.health.v1.Health"] as grpc.ServiceDefinition).Watch as grpc.MethodDefinition<object, { status: string }>;
			const watcher = client.makeServerStreamRequest(watch.path, watch.requestSerialize, watch.responseDeserialize, { service: "" }, new grpc.Metadata(), {});
			const statuses: string[] = [];
			watcher.on("data", (update: { status: string }) => statuses.push(update.status));
			watcher.on("error", () => undefined);
			expect(await pollUntil(async () => statuses.includes("SERVING"), 5_000, 10)).not.toBeNull();

			const sendCalls = t.telegram.calls.sendMessage ?? 0;
			t.telegram.failNext("sendMessage", { delayMs: 1_500 });
			const inFlight = rpc<{ message: MessageProto; queued: boolean }>("SendMessage", { chat_id: chatA, text: "in flight while draining" });
			expect(await pollUntil(async () => (t.telegram.calls.sendMessage ?? 0) > sendCalls, 5_000, 10)).not.toBeNull();

			const drained = grpcService().drain();
			const status = await probe.end(2_000);
			expect([status.code, status.details, status.metadata.get("x-error-code")]).toEqual([grpc.status.UNAVAILABLE, "server shutting down", ["UNAVAILABLE"]]);
			expect(await pollUntil(async () => statuses.includes("NOT_SERVING"), 2_000, 10)).not.toBeNull();
			watcher.cancel();

			const finished = await inFlight;
			expect(finished.error).toBeUndefined();
			expect(finished.value).toMatchObject({ queued: false, message: { status: "sent", text: "in flight while draining" } });
			const started = Date.now();
			await drained;
			expect(Date.now() - started).toBeLessThan(5_000);

			const refused = await rpc("ListChats", {}, creds(admin), { deadline: Date.now() + 2_000 });
			expect(refused.error?.code).toBe(grpc.status.UNAVAILABLE);
		});
	});
});
