import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { findProtoFile, guardDeserializers, isMalformed, loadGatewayProto, MALFORMED, wireFormatProblem, wireTypesOf } from "../../services/grpc/proto";
import { tempDir } from "../support/harness";

const ROOT = join(__dirname, "..", "..");

describe("findProtoFile", () => {
	it("finds proto/gateway.proto above the sources and above a compiled dist/ build", () => {
		const expected = join(ROOT, "proto", "gateway.proto");
		expect(findProtoFile(join(ROOT, "services", "grpc"))).toBe(expected);
		expect(findProtoFile(join(ROOT, "dist", "services", "grpc"))).toBe(expected);
		expect(findProtoFile(ROOT)).toBe(expected);
	});

	it("says where it looked when there is none", () => {
		const dir = join(tempDir("tgw-proto-"), "a", "b");
		mkdirSync(dir, { recursive: true });
		expect(() => findProtoFile(dir)).toThrow(/proto\/gateway\.proto was not found in .*a\/b or any directory above it/);
	});
});

describe("loadGatewayProto", () => {
	const proto = loadGatewayProto();

	it("serves the three services of API.md, ten RPCs, and describes health for reflection", () => {
		expect(Object.keys(proto.services.MessageService).sort()).toEqual(["GetMessages", "SendMessage", "StreamChatMessages", "StreamMessages"]);
		expect(Object.keys(proto.services.ChatService).sort()).toEqual(["GetChat", "ListChats"]);
		expect(Object.keys(proto.services.BotService).sort()).toEqual(["CreateBot", "DeleteBot", "GetBot", "ListBots"]);
		expect(proto.services.MessageService.StreamMessages!.responseStream).toBe(true);
		expect(proto.services.MessageService.SendMessage!.responseStream).toBe(false);
		expect(Object.keys(proto.reflectionDefinition)).toEqual(expect.arrayContaining(["gateway.v1.MessageService", "grpc.health.v1.Health"]));
	});

	it("decodes with the bridge's options: snake_case, numbers, defaults, optional presence", () => {
		const method = proto.services.MessageService.GetMessages!;
		const roundTrip = (request: object) => method.requestDeserialize(method.requestSerialize(request));
		expect(roundTrip({ chat_id: 5 })).toEqual({ chat_id: 5, limit: 0, cursor: "" });
		expect(roundTrip({ chat_id: 5, after_seq: 0 })).toEqual({ chat_id: 5, limit: 0, cursor: "", after_seq: 0, _after_seq: "after_seq" });
	});

	it("turns bytes that are not the request type into MALFORMED instead of throwing", () => {
		const getChat = proto.services.ChatService.GetChat!;
		expect(isMalformed(getChat.requestDeserialize(Buffer.from([0xff, 0xff, 0xff, 0xff, 0xff, 0xff])))).toBe(true);
		const send = proto.services.MessageService.SendMessage!;
		const valid = send.requestSerialize({ chat_id: 1, text: "hello there" });
		expect(send.requestDeserialize(valid)).toMatchObject({ chat_id: 1, text: "hello there" });
		expect(isMalformed(send.requestDeserialize(valid.subarray(0, valid.length - 2)))).toBe(true);
		const otherMessage = proto.services.BotService.CreateBot!.requestSerialize({ token: "1:x" });
		expect(isMalformed(getChat.requestDeserialize(otherMessage))).toBe(true);
		expect(getChat.requestDeserialize(Buffer.alloc(0))).toEqual({ id: 0 });
	});
});

describe("wireFormatProblem", () => {
	const types = new Map([
		[1, 0],
		[2, 2],
	]);

	it.each([
		["an empty message", [], null],
		["a varint and a string", [0x08, 0x96, 0x01, 0x12, 0x02, 0x68, 0x69], null],
		["an unknown fixed32 field", [0x1d, 1, 2, 3, 4], null],
		["an unknown fixed64 field", [0x19, 1, 2, 3, 4, 5, 6, 7, 8], null],
		["a truncated string", [0x12, 0x05, 0x68, 0x69], "field 2 is truncated"],
		["a truncated varint", [0x08, 0x96], "field 1: truncated varint"],
		["a truncated tag", [0x96], "truncated tag"],
		["field number 0", [0x00, 0x01], "invalid field number 0"],
		["a group (wire type 3)", [0x1b], "invalid wire type 3"],
		["a string where a varint belongs", [0x0a, 0x01, 0x78], "field 1 has wire type 2, not 0"],
		["a truncated fixed32", [0x1d, 1, 2], "field 3 is truncated"],
	])("%s", (_name, bytes, problem) => {
		expect(wireFormatProblem(Uint8Array.from(bytes), types)).toBe(problem);
	});

	it("takes each singular field's wire type from the descriptor; repeated fields are not checked", () => {
		expect(
			wireTypesOf({
				field: [
					{ number: 1, type: "TYPE_INT64", label: "LABEL_OPTIONAL" },
					{ number: 2, type: "TYPE_STRING", label: "LABEL_OPTIONAL" },
					{ number: 3, type: "TYPE_DOUBLE", label: "LABEL_OPTIONAL" },
					{ number: 4, type: "TYPE_FLOAT", label: "LABEL_OPTIONAL" },
					{ number: 5, type: "TYPE_INT32", label: "LABEL_REPEATED" },
				],
			}),
		).toEqual(
			new Map([
				[1, 0],
				[2, 2],
				[3, 1],
				[4, 5],
			]),
		);
	});

	it("guardDeserializers keeps everything but the request deserializer", () => {
		const proto = loadGatewayProto();
		const raw = proto.packageDefinition["gateway.v1.ChatService"] as unknown as Parameters<typeof guardDeserializers>[0];
		const guarded = guardDeserializers(raw);
		expect(guarded.GetChat!.path).toBe("/gateway.v1.ChatService/GetChat");
		expect(guarded.GetChat!.responseSerialize).toBe(raw.GetChat!.responseSerialize);
		expect(MALFORMED in (guarded.GetChat!.requestDeserialize(Buffer.from([0x08])) as object)).toBe(true);
	});
});
