/**
 * Server reflection (@grpc/reflection), with its lookup tables made safe for names a client
 * chooses. The library keeps symbols, files and extensions in plain objects, so a request for the
 * symbol "constructor" or the file "toString" finds Object.prototype's member and answers with an
 * empty descriptor, and allExtensionNumbersOfType("hasOwnProperty") succeeds, where every one of
 * them should be NOT_FOUND. The same tables without a prototype answer as the specification says.
 */
import type { Server } from "@grpc/grpc-js";
import type { PackageDefinition } from "@grpc/proto-loader";
import { ReflectionService } from "@grpc/reflection";

const LOOKUP_TABLES = ["symbols", "files", "extensions", "services"] as const;

type Implementation = Partial<Record<(typeof LOOKUP_TABLES)[number], unknown>>;

function withoutPrototype(table: object): Record<string, unknown> {
	return Object.assign(Object.create(null) as Record<string, unknown>, table);
}

/** Adds grpc.reflection.v1 and v1alpha to `server`, describing `definition`. */
export function addReflection(server: Server, definition: PackageDefinition): void {
	const service = new ReflectionService(definition);
	const implementations = Object.values(service as unknown as Record<string, Implementation>);
	for (const implementation of implementations) {
		for (const name of LOOKUP_TABLES) {
			const table = implementation[name];
			// A later version that stores them otherwise is caught by the reflection tests.
			if (table !== null && typeof table === "object" && !(table instanceof Map)) implementation[name] = withoutPrototype(table);
		}
	}
	service.addToServer(server);
}
