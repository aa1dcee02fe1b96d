import { vanishedAliases, type GeneratedAlias } from "../../services/api/aliases";

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
});
