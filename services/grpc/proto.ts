/**
 * The gRPC contract at run time: proto/gateway.proto, found from wherever this file runs (the
 * sources, or a compiled dist/), loaded once with the options the whole bridge assumes (snake_case
 * fields, int64 as numbers, defaults filled in, `optional` presence kept).
 *
 * Requests that are not valid protobuf are not left to grpc-js (which answers INTERNAL) nor to
 * protobufjs (which reads a truncated string or a field of the wrong wire type without complaint):
 * each request deserializer checks the wire format first, and a request that fails reaches the
 * handler as MALFORMED, which answers INVALID_ARGUMENT like any other bad input.
 */
import { existsSync } from "node:fs";
import { dirname, join } from "node:path";
import type { MethodDefinition, ServiceDefinition } from "@grpc/grpc-js";
import { loadSync, type Options, type PackageDefinition, type ServiceDefinition as ProtoServiceDefinition } from "@grpc/proto-loader";
import { protoPath as healthProtoPath } from "grpc-health-check";

export const PROTO_PACKAGE = "gateway.v1";
export const SERVICE_NAMES = ["MessageService", "ChatService", "BotService"] as const;
export type GatewayServiceName = (typeof SERVICE_NAMES)[number];

export const LOADER_OPTIONS: Options = { keepCase: true, longs: Number, enums: String, defaults: true, oneofs: true };

const PROTO_FILE = join("proto", "gateway.proto");

/** Walks up from `startDir` to the first directory holding proto/gateway.proto (the project root). */
export function findProtoFile(startDir: string = __dirname): string {
	for (let dir = startDir; ; dir = dirname(dir)) {
		const candidate = join(dir, PROTO_FILE);
		if (existsSync(candidate)) return candidate;
		if (dirname(dir) === dir) throw new Error(`${PROTO_FILE} was not found in ${startDir} or any directory above it`);
	}
}

/** What a guarded deserializer hands the handler when the bytes are not a valid message. */
export const MALFORMED: unique symbol = Symbol("malformed protobuf request");
export interface Malformed {
	readonly [MALFORMED]: true;
}

export function isMalformed(request: unknown): request is Malformed {
	return typeof request === "object" && request !== null && MALFORMED in request;
}

/** The wire type each scalar field type is written with (proto3; groups are not proto3). */
const WIRE_TYPE: Record<string, number> = {
	TYPE_INT64: 0,
	TYPE_UINT64: 0,
	TYPE_INT32: 0,
	TYPE_UINT32: 0,
	TYPE_SINT32: 0,
	TYPE_SINT64: 0,
	TYPE_BOOL: 0,
	TYPE_ENUM: 0,
	TYPE_FIXED64: 1,
	TYPE_SFIXED64: 1,
	TYPE_DOUBLE: 1,
	TYPE_STRING: 2,
	TYPE_BYTES: 2,
	TYPE_MESSAGE: 2,
	TYPE_FIXED32: 5,
	TYPE_SFIXED32: 5,
	TYPE_FLOAT: 5,
};

interface FieldDescriptor {
	number: number;
	type: string;
	label: string;
}

/** Field number -> wire type, for a message's singular fields (repeated ones may come packed or not). */
export function wireTypesOf(descriptor: { field?: FieldDescriptor[] }): Map<number, number> {
	const types = new Map<number, number>();
	for (const field of descriptor.field ?? []) {
		const wire = WIRE_TYPE[field.type];
		if (wire !== undefined && field.label !== "LABEL_REPEATED") types.set(field.number, wire);
	}
	return types;
}

/**
 * Why `bytes` are not a well-formed message (null when they are): a truncated tag, varint or field,
 * an invalid wire type, or (given `wireTypes`) a known field written with another wire type, which
 * is what another message's bytes usually look like. protobufjs alone lets a truncated trailing
 * string through and reads mismatched wire types as if they matched.
 */
export function wireFormatProblem(bytes: Uint8Array, wireTypes?: ReadonlyMap<number, number>): string | null {
	let pos = 0;
	const varint = (): number | null => {
		let value = 0;
		for (let shift = 0; shift < 70; shift += 7) {
			if (pos >= bytes.length) return null;
			const byte = bytes[pos++]!;
			if (shift < 53) value += (byte & 0x7f) * 2 ** shift;
			if (byte < 0x80) return value;
		}
		return null;
	};
	while (pos < bytes.length) {
		const tag = varint();
		if (tag === null) return "truncated tag";
		const field = Math.floor(tag / 8);
		const wire = tag % 8;
		if (field === 0 || field > 536_870_911) return `invalid field number ${field}`;
		const expected = wireTypes?.get(field);
		if (expected !== undefined && expected !== wire) return `field ${field} has wire type ${wire}, not ${expected}`;
		if (wire === 0) {
			if (varint() === null) return `field ${field}: truncated varint`;
		} else if (wire === 1) pos += 8;
		else if (wire === 5) pos += 4;
		else if (wire === 2) {
			const length = varint();
			if (length === null) return `field ${field}: truncated length`;
			pos += length;
		} else return `invalid wire type ${wire}`;
		if (pos > bytes.length) return `field ${field} is truncated`;
	}
	return null;
}

/** The same service, its request deserializers guarded: bytes that are not the request type become MALFORMED. */
export function guardDeserializers(service: ProtoServiceDefinition): ServiceDefinition {
	const guarded: Record<string, MethodDefinition<object, object>> = {};
	for (const [name, method] of Object.entries(service)) {
		const decode = method.requestDeserialize;
		const wireTypes = wireTypesOf(method.requestType.type as { field?: FieldDescriptor[] });
		guarded[name] = {
			...method,
			requestDeserialize: (bytes: Buffer) => {
				try {
					if (wireFormatProblem(bytes, wireTypes) === null) return decode(bytes);
				} catch {
					// not this message: answered as MALFORMED below
				}
				return { [MALFORMED]: true } satisfies Malformed;
			},
		};
	}
	return guarded;
}

export interface GatewayProto {
	file: string;
	/** The gateway's package (for clients and tests). */
	packageDefinition: PackageDefinition;
	/** The three services, ready for server.addService. */
	services: Record<GatewayServiceName, ServiceDefinition>;
	/** What server reflection describes: the gateway's package and the standard health service. */
	reflectionDefinition: PackageDefinition;
}

export function loadGatewayProto(file: string = findProtoFile()): GatewayProto {
	const packageDefinition = loadSync(file, LOADER_OPTIONS);
	const services = {} as Record<GatewayServiceName, ServiceDefinition>;
	for (const name of SERVICE_NAMES) {
		const definition = packageDefinition[`${PROTO_PACKAGE}.${name}`];
		// Message and enum types carry a `format`; services are plain method maps.
		if (!definition || "format" in definition) throw new Error(`${file} does not define service ${PROTO_PACKAGE}.${name}`);
		services[name] = guardDeserializers(definition as ProtoServiceDefinition);
	}
	const health = loadSync(healthProtoPath, LOADER_OPTIONS);
	return { file, packageDefinition, services, reflectionDefinition: { ...packageDefinition, ...health } };
}
