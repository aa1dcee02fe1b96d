/**
 * Hostile input against the gRPC server, proto/gateway.proto (property-based, fast-check): bytes that
 * are not the method's message (random, truncated, over-long varints, wrong wire types, lengths past
 * the end) sent through a real grpc-js client with a custom serializer, well-formed messages whose
 * fields hold extreme values (int64 limits, negative ids, hostile and huge strings), and messages over
 * the 1 MB limit. Every call ends with a status that answers the input (INVALID_ARGUMENT, NOT_FOUND,
 * PERMISSION_DENIED, RESOURCE_EXHAUSTED, OK), never INTERNAL or UNKNOWN and never a hang; a refused
 * call stores nothing; the server keeps serving; injection strings come back unchanged.
 */
import * as grpc from "@grpc/grpc-js";
import fc from "fast-check";
import type { ServiceBroker } from "moleculer";
import { createUser, type TestUser } from "../support/auth";
import { userWrites } from "../support/chat-helpers";
import { expectNoLeak, expectServing, expectUnchanged, heapUsed, rowCounts, stopWithinHeapBound, telegramRefusedSend } from "../support/hostile-checks";
import { GRPC_SERVER_FAILURES, GRPC_SERVICE_OF, grpcCall, grpcCredentials, grpcMethod, type GrpcOutcome, grpcPortOf } from "../support/hostile-grpc";
import { hostileText, notJson, runs } from "../support/hostile";
import { startTelegramGateway, type TelegramGateway } from "../support/telegram-gateway";

const METHODS = Object.keys(GRPC_SERVICE_OF);
/** Calls that change something: sent as a viewer when the bytes are random, so no random id deletes a bot. */
const MUTATING = new Set(["CreateBot", "DeleteBot", "SendMessage"]);

interface FieldDescriptor {
	name: string;
	type: string;
}

function fieldsOf(name: string): FieldDescriptor[] {
	return (grpcMethod(name) as unknown as { requestType: { type: { field: FieldDescriptor[] } } }).requestType.type.field;
}

/** Bytes that break the protobuf wire format in the ways a decoder must survive. */
const brokenProtobuf = (valid: fc.Arbitrary<Buffer>): fc.Arbitrary<Buffer> =>
	fc.oneof(
		fc.uint8Array({ maxLength: 512 }).map((b) => Buffer.from(b)),
		valid.chain((bytes) => fc.nat({ max: Math.max(0, bytes.length - 1) }).map((cut) => bytes.subarray(0, cut))),
		valid.chain((bytes) => fc.uint8Array({ minLength: 1, maxLength: 32 }).map((tail) => Buffer.concat([bytes, Buffer.from(tail)]))),
		fc.constantFrom(
			Buffer.from([0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]), // an 11-byte varint
			Buffer.from([0x0e, 0x00]), // wire type 6: does not exist
			Buffer.from([0x0f]), // wire type 7
			Buffer.from([0x0b, 0x08, 0x01]), // a start group without its end
			Buffer.from([0x12, 0xff, 0xff, 0xff, 0xff, 0x0f, 0x61]), // a string 4 GB long, one byte present
			Buffer.from([0x12, 0x05, 0xff, 0xfe, 0xc0, 0x80, 0xed]), // a string field of invalid UTF-8
			Buffer.from([0x00, 0x01]), // field number 0
			Buffer.from([0xf8, 0xff, 0xff, 0xff, 0x0f, 0x01]), // field number 2^29 - 1 (unknown)
			Buffer.from([0x08]), // a tag with no value
			Buffer.alloc(0),
		),
	);

describe("hostile input: gRPC", () => {
	let t: TelegramGateway;
	let client: grpc.Client;
	let viewer: TestUser;
	let botId: number;
	let chatId: number;
	const chats: number[] = [];
	let heapBefore: number;

	beforeAll(async () => {
		t = await startTelegramGateway({ mode: "polling" });
		const added = await t.addBot({ username: "hostile_grpc_bot" });
		botId = added.bot.id;
		for (let i = 0; i < 12; i++) chats.push((await userWrites(t, added.token, botId, { chat_id: 8100 + i, text: `chat ${i}` })).chatId);
		chatId = chats[0]!;
		viewer = await createUser(t.gw, t.adminToken, ["viewer"]);
		client = new grpc.Client(`127.0.0.1:${grpcPortOf(t.gw.broker)}`, grpc.credentials.createInsecure());
		heapBefore = heapUsed();
	}, 60_000);
	afterAll(async () => {
		client?.close();
		await stopWithinHeapBound(heapBefore, () => t?.stop());
	});

	/** The server still answers a normal call (and REST still serves). */
	async function expectGrpcServing(): Promise<void> {
		const outcome = await grpcCall(client, "GetChat", { id: chatId }, grpcCredentials(t.adminToken));
		expect({ code: outcome.code, id: (outcome.value as { id?: number } | undefined)?.id }).toEqual({ code: grpc.status.OK, id: chatId });
	}

	/** A status that answers the input: not a server failure, not a hang, nothing internal in it. */
	function expectAnswered(outcome: GrpcOutcome, label: string): void {
		if (GRPC_SERVER_FAILURES.has(outcome.code) || outcome.code === grpc.status.DEADLINE_EXCEEDED) {
			throw new Error(`${grpc.status[outcome.code]} (${outcome.details}; x-error-code ${outcome.apiCode}) for ${label}`);
		}
		expectNoLeak(outcome.details ?? "", label);
	}

	/** An int64 where an id, a seq or a limit belongs. */
	const int64 = () =>
		fc.oneof(
			fc.constantFrom<number | string>(botId, chatId, 987_654, 0, -1, 2 ** 53 - 1, "9007199254740993", "9223372036854775807", "-9223372036854775808"),
			fc.bigInt({ min: -(2n ** 63n), max: 2n ** 63n - 1n }).map(String),
			fc.integer(),
		);
	const int32 = fc.oneof(fc.integer(), fc.constantFrom(0, -1, 1, 200, 201, 2 ** 31 - 1, -(2 ** 31)));
	const text = fc.oneof(hostileText, fc.string({ maxLength: 50 }), notJson, fc.constantFrom("", " ", "HTML", "Markdown", "MarkdownV2", "x".repeat(4_097), "y".repeat(200_000), "123456:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw"));

	/** A well-formed request of `name` whose every field holds a random value of its proto type. */
	function typedRequest(name: string): fc.Arbitrary<Record<string, unknown>> {
		const model: Record<string, fc.Arbitrary<unknown>> = {};
		for (const field of fieldsOf(name)) {
			const value = field.type === "TYPE_INT64" ? int64() : field.type === "TYPE_INT32" ? int32 : field.type === "TYPE_BOOL" ? fc.boolean() : text;
			model[field.name] = value;
		}
		const random = fc.record(model, { requiredKeys: [] });
		// A valid request with one field replaced: the handlers behind the decoder run with it.
		const template = validRequest(name);
		const names = Object.keys(model).filter((f) => f in template);
		if (names.length === 0) return random;
		const oneField = fc.constantFrom(...names).chain((field) => model[field]!.map((value) => ({ ...template, [field]: value })));
		return fc.oneof(random, oneField);
	}

	function validRequest(name: string): Record<string, unknown> {
		const requests: Record<string, Record<string, unknown>> = {
			StreamMessages: { bot_id: botId, since_seq: 0 },
			StreamChatMessages: { chat_id: chatId, since_seq: 0 },
			SendMessage: { chat_id: chatId, text: "hello", parse_mode: "", reply_to_message_id: 0, disable_notification: false, idempotency_key: "" },
			GetMessages: { chat_id: chatId, limit: 10, cursor: "" },
			ListChats: { bot_id: botId, limit: 10, cursor: "" },
			GetChat: { id: chatId },
			ListBots: { limit: 10, cursor: "" },
			GetBot: { id: botId },
			CreateBot: { token: "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw", display_name: "x", description: "y" },
			DeleteBot: { id: 987_654 },
		};
		return requests[name] ?? {};
	}

	it("bytes that are not the method's message: INVALID_ARGUMENT or another answer, never INTERNAL, UNKNOWN or a hang", async () => {
		const identity = (bytes: unknown) => bytes as Buffer;
		const input = fc.constantFrom(...METHODS).chain((name) =>
			fc.record({ name: fc.constant(name), bytes: brokenProtobuf(typedRequest(name).map((r) => grpcMethod(name).requestSerialize(r as object))) }),
		);
		const seen: Record<string, number> = {};
		await fc.assert(
			fc.asyncProperty(input, async ({ name, bytes }) => {
				const label = `${name} <${bytes.toString("hex").slice(0, 80)}>`;
				const before = await rowCounts(t.gw.runtime.db);
				const outcome = await grpcCall(client, name, bytes, grpcCredentials(MUTATING.has(name) ? viewer.token : t.adminToken), { serialize: identity });
				seen[grpc.status[outcome.code]] = (seen[grpc.status[outcome.code]] ?? 0) + 1;
				expectAnswered(outcome, label);
				if (outcome.code !== grpc.status.OK) expectUnchanged(before, await rowCounts(t.gw.runtime.db), label);
				await expectGrpcServing();
			}),
			runs(200),
		);
		expect(seen.INVALID_ARGUMENT ?? 0).toBeGreaterThan(20);
		await expectServing(t.baseUrl, t.adminToken);
	});

	it.each(METHODS)("%s with extreme values in every field: answered, never INTERNAL; a refusal stores nothing", async (name) => {
		const seen: Record<string, number> = {};
		let sends = 0;
		await fc.assert(
			fc.asyncProperty(typedRequest(name), async (request) => {
				// Never the fixtures' own bot: a DeleteBot of it would change the tests that follow.
				if (name === "DeleteBot" && [botId, String(botId)].includes(request.id as number)) request.id = 987_654;
				// Sends go to any of twelve chats: Telegram takes one message a second per chat.
				if (name === "SendMessage" && request.chat_id === chatId) request.chat_id = chats[sends++ % chats.length];
				const label = `${name} ${JSON.stringify(request).slice(0, 300)}`;
				const before = await rowCounts(t.gw.runtime.db);
				const outcome = await grpcCall(client, name, request, grpcCredentials(t.adminToken));
				seen[grpc.status[outcome.code]] = (seen[grpc.status[outcome.code]] ?? 0) + 1;
				expectAnswered(outcome, label);
				if (outcome.code !== grpc.status.OK && !telegramRefusedSend(outcome.details)) expectUnchanged(before, await rowCounts(t.gw.runtime.db), label);
				await expectGrpcServing();
			}),
			runs(name === "SendMessage" ? 40 : 60),
		);
		await expectGrpcServing();
		// Not every value was refused: the handlers behind the decoder ran too (except where every message needs a valid token).
		if (!["CreateBot", "DeleteBot", "SendMessage"].includes(name)) expect(Object.keys(seen).length).toBeGreaterThan(1);
	});

	it("hostile metadata next to a valid credential (ids, forwarded addresses, binary values, an x-api-key): answered, never INTERNAL", async () => {
		// (A second `authorization` cannot be sent: HTTP/2 allows it once, and grpc-js refuses before sending.)
		const key = fc.constantFrom("x-request-id", "x-forwarded-for", "idempotency-key", "x-api-key", "x-error-code", "trace-bin", "x-custom");
		const value = fc.oneof(hostileText, fc.string({ maxLength: 200 }), fc.constantFrom("", "Bearer", "Bearer  x y", "::1, 10.0.0.1, 999.1.1.1", "x".repeat(4_000)));
		await fc.assert(
			fc.asyncProperty(fc.constantFrom("GetChat", "ListChats", "GetMessages", "ListBots", "StreamChatMessages"), fc.array(fc.tuple(key, value), { maxLength: 4 }), async (name, entries) => {
				const md = grpcCredentials(t.adminToken);
				for (const [k, v] of entries) {
					if (k.endsWith("-bin")) md.add(k, Buffer.from(v));
					else md.add(k, v.replace(/[^\x20-\x7e]/g, ""));
				}
				const outcome = await grpcCall(client, name, validRequest(name), md, { openMs: 50 });
				expectAnswered(outcome, `${name} with ${JSON.stringify(entries).slice(0, 300)}`);
				// The Bearer credential comes first: the call is the admin's, whatever follows it.
				expect(grpc.status[outcome.code]).toBe("OK");
			}),
			runs(100),
		);
	});

	it("a message over 1 MB: RESOURCE_EXHAUSTED, nothing stored; just under it, the field limits answer INVALID_ARGUMENT", async () => {
		await fc.assert(
			fc.asyncProperty(fc.constantFrom("SendMessage", "CreateBot", "GetMessages", "StreamMessages"), fc.integer({ min: 1024 * 1024 + 1, max: 3 * 1024 * 1024 }), async (name, size) => {
				const big = "b".repeat(size);
				const request = name === "SendMessage" ? { chat_id: chatId, text: big } : name === "CreateBot" ? { token: big } : name === "GetMessages" ? { chat_id: chatId, cursor: big } : { bot_id: botId };
				const bytes = name === "StreamMessages" ? Buffer.concat([grpcMethod(name).requestSerialize(request), Buffer.from([0x9a, 0x05]), encodeVarint(size), Buffer.alloc(size, 0x61)]) : grpcMethod(name).requestSerialize(request);
				const before = await rowCounts(t.gw.runtime.db);
				const outcome = await grpcCall(client, name, bytes, grpcCredentials(t.adminToken), { serialize: (b) => b as Buffer });
				expect(grpc.status[outcome.code]).toBe("RESOURCE_EXHAUSTED");
				expectUnchanged(before, await rowCounts(t.gw.runtime.db), `${name} of ${size} bytes`);
				await expectGrpcServing();
			}),
			runs(8),
		);
		const under = await grpcCall(client, "SendMessage", { chat_id: chatId, text: "u".repeat(1_000_000) }, grpcCredentials(t.adminToken));
		expect({ code: grpc.status[under.code], apiCode: under.apiCode }).toEqual({ code: "INVALID_ARGUMENT", apiCode: "VALIDATION_ERROR" });
	});

	it("the credential is checked before the request message is read: bytes that would be INVALID_ARGUMENT are UNAUTHENTICATED without one, and auth.resolve runs once per call with one", async () => {
		// ~1 MB of unknown fields: decoding it is the cost a caller without credentials no longer gets.
		const junk = Buffer.alloc(1_000_000);
		for (let i = 0; i < junk.length; i += 2) junk.set([0x78, 0x01], i);
		const raw = { serialize: (b: unknown) => b as Buffer };
		for (const name of ["SendMessage", "GetChat", "StreamMessages"]) {
			for (const md of [grpcCredentials(), grpcCredentials("not-a-token"), grpcCredentials(undefined, { "x-api-key": `tgw_${"c".repeat(43)}` })]) {
				const outcome = await grpcCall(client, name, Buffer.from([0xff, 0xff, 0xff]), md, raw);
				expect({ name, code: grpc.status[outcome.code] }).toEqual({ name, code: "UNAUTHENTICATED" });
			}
			expect(grpc.status[(await grpcCall(client, name, junk, grpcCredentials(), raw)).code]).toBe("UNAUTHENTICATED");
		}
		// With a valid credential the message is read, and its bytes answered for.
		const malformed = await grpcCall(client, "GetChat", Buffer.from([0xff, 0xff, 0xff]), grpcCredentials(t.adminToken), raw);
		expect(grpc.status[malformed.code]).toBe("INVALID_ARGUMENT");

		let resolves = 0;
		const call = t.gw.broker.call.bind(t.gw.broker);
		const spy = jest.spyOn(t.gw.broker, "call").mockImplementation(((action: string, ...rest: unknown[]) => {
			if (action === "auth.resolve") resolves += 1;
			return (call as (...args: unknown[]) => Promise<unknown>)(action, ...rest);
		}) as ServiceBroker["call"]);
		try {
			await expectGrpcServing();
		} finally {
			spy.mockRestore();
		}
		expect(resolves).toBe(1);
	});

	it("injection strings sent through SendMessage come back unchanged through GetMessages", async () => {
		let sends = 0;
		await fc.assert(
			fc.asyncProperty(
				hostileText.filter((s) => s.trim().length > 0 && s.length <= 4096),
				async (sent) => {
					const chat = chats[sends++ % chats.length]!;
					const outcome = await grpcCall(client, "SendMessage", { chat_id: chat, text: sent }, grpcCredentials(t.adminToken));
					const message = (outcome.value as { message: { id: number; text: string } } | undefined)?.message;
					expect({ code: outcome.code, text: message?.text }).toEqual({ code: grpc.status.OK, text: sent });
					const history = await grpcCall(client, "GetMessages", { chat_id: chat, limit: 1 }, grpcCredentials(t.adminToken));
					expect((history.value as { messages: Array<{ id: number; text: string }> }).messages[0]).toMatchObject({ id: message!.id, text: sent });
				},
			),
			runs(40),
		);
	});
});

function encodeVarint(value: number): Buffer {
	const bytes: number[] = [];
	let v = value;
	while (v > 0x7f) {
		bytes.push((v & 0x7f) | 0x80);
		v = Math.floor(v / 128);
	}
	bytes.push(v);
	return Buffer.from(bytes);
}
