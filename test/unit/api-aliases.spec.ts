import { GatewayError, toApiError } from "../../lib/errors";
import { documentedAliasSpecs, serviceAwayError, vanishedAliases, type GeneratedAlias } from "../../services/api/aliases";

const route = { path: "/api/v1" };
const other = { path: "/" };
const alias = (method: string, path: string, action: string, extra: Partial<GeneratedAlias> = {}): GeneratedAlias => ({ route, method, path, action, _generated: true, ...extra });

describe("vanishedAliases", () => {
	const chats = alias("GET", "chats", "chats.list");
	const me = alias("GET", "auth/me", "auth.me");

	it("keeps the generated routes whose action left the registry", () => {
		expect(vanishedAliases([chats, me], [me], route)).toEqual([chats]);
	});

	it("keeps nothing when every route is still there", () => {
		expect(vanishedAliases([chats, me], [alias("GET", "chats", "chats.list"), me], route)).toEqual([]);
	});

	it("drops a route whose action is back under another path", () => {
		expect(vanishedAliases([chats], [alias("GET", "conversations", "chats.list")], route)).toEqual([]);
	});

	it("leaves hand-written aliases and other routes alone", () => {
		const handWritten = alias("POST", "webhook/:path", "ingest.receive", { _generated: undefined });
		const elsewhere = alias("GET", "health", "api.health", { route: other });
		expect(vanishedAliases([handWritten, elsewhere], [], route)).toEqual([]);
	});

	it("keeps a route once when it was seen before and is documented too", () => {
		const documented = alias("GET", "chats", "chats.list");
		const bots = alias("GET", "bots", "bots.list");
		expect(vanishedAliases([chats, me, documented, bots], [me], route)).toEqual([chats, bots]);
	});
});

describe("documented routes", () => {
	it("are METHOD and a path relative to /api/v1, each calling a service's action", () => {
		for (const spec of documentedAliasSpecs()) {
			expect(spec.method).toMatch(/^(GET|POST|PUT|PATCH|DELETE)$/);
			expect(spec.path).toMatch(/^[a-z][a-z0-9/:_-]*$/);
			expect(spec.action).toMatch(/^(auth|bots|chats|delivery)\.[A-Za-z]+$/);
		}
	});
});

describe("serviceAwayError", () => {
	it("is 503 UNAVAILABLE naming the service, with a Retry-After", () => {
		const err = serviceAwayError("delivery.listWebhooks");
		expect(err).toBeInstanceOf(GatewayError);
		expect(toApiError(err)).toEqual({
			status: 503,
			retryAfter: 5,
			body: { error: { code: "UNAVAILABLE", message: "The delivery service is unavailable (no node runs it right now), try again later", details: { retry_after: 5 } } },
		});
	});

	it("does not say no node runs the service when nodes run it whose circuit breakers are open", () => {
		expect(serviceAwayError("delivery.listWebhooks", true).message).toBe("The delivery service is unavailable (its recent calls failed on every node running it), try again later");
	});
});
