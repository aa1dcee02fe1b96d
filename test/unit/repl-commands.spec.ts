import fc from "fast-check";
import { Errors } from "moleculer";
import { fail } from "../../lib/errors";
import { optionalInt, parseCommand, parseId, parseRights, parseSince, parseUserRef, UsageError } from "../../lib/repl/args";
import type { GatewayClient } from "../../lib/repl/client";
import { commandOf } from "../../lib/repl/command";
import { age, cell, describeError, formatStats, pairs, perSecond, tableOf, type StatsSnapshot } from "../../lib/repl/format";
import { streamStats } from "../../mixins/event-stream/stream-stats";

const NOW = Date.parse("2026-03-01T12:00:00Z");

describe("REPL argument parsing", () => {
	it("splits the subcommand, positionals and options, keeping every value a string", () => {
		const parsed = parseCommand(["create", "007", "--role", "admin", "--role", "viewer", "--password", "0123"], {
			role: { type: "string", multiple: true },
			password: { type: "string" },
		});
		expect(parsed).toEqual({ sub: "create", positionals: ["007"], values: { role: ["admin", "viewer"], password: "0123" } });
		expect(parseCommand([]).sub).toBe("");
	});

	it("names an unknown option or a missing value without the parser's advice", () => {
		expect(() => parseCommand(["list", "--frob"])).toThrow(new UsageError("Unknown option '--frob'"));
		expect(() => parseCommand(["list", "--user"], { user: { type: "string" } })).toThrow(UsageError);
		expect(() => parseCommand(["list", "--user"], { user: { type: "string" } })).toThrow(/--user/);
	});

	it("takes ids as positive whole numbers and says which argument is wrong", () => {
		expect(parseId("42", "bot id")).toBe(42);
		for (const bad of ["0", "-1", "1.5", "abc", "", "1e3", "99999999999999999"]) {
			expect(() => parseId(bad, "bot id")).toThrow(new UsageError(`bot id must be a positive whole number, got "${bad}"`));
		}
		expect(() => parseId(undefined, "chat id")).toThrow(/chat id must be/);
	});

	it("bounds optional numbers", () => {
		expect(optionalInt(undefined, "limit", 1, 200)).toBeUndefined();
		expect(optionalInt("200", "limit", 1, 200)).toBe(200);
		expect(() => optionalInt("201", "limit", 1, 200)).toThrow("--limit must be a whole number from 1 to 200, got \"201\"");
		expect(() => optionalInt("ten", "window", 1, 3600)).toThrow(/--window/);
	});

	it("reads a user as an id or a username", () => {
		expect(parseUserRef("12")).toEqual({ id: 12 });
		expect(parseUserRef("@007")).toEqual({ username: "007" });
		expect(parseUserRef("Alice.Ops")).toEqual({ username: "alice.ops" });
		expect(() => parseUserRef("no spaces")).toThrow(/neither a user id nor a username/);
	});

	it("reads chat rights by full or short name, in a fixed order, once each", () => {
		expect(parseRights(["send", "can_read", "read"])).toEqual(["can_read", "can_send"]);
		expect(parseRights(["manage,send"])).toEqual(["can_send", "can_manage"]);
		expect(parseRights([], 0)).toEqual([]);
		expect(() => parseRights([])).toThrow(/name at least one right/);
		expect(() => parseRights(["fly"])).toThrow('unknown right "fly" (rights: can_read, can_send, can_manage)');
	});

	it("takes --since as an age or an ISO time in the past", () => {
		expect(parseSince("30m", NOW).toISOString()).toBe("2026-03-01T11:30:00.000Z");
		expect(parseSince("2h", NOW).toISOString()).toBe("2026-03-01T10:00:00.000Z");
		expect(parseSince("7d", NOW).toISOString()).toBe("2026-02-22T12:00:00.000Z");
		expect(parseSince("2026-02-28T00:00:00Z", NOW).toISOString()).toBe("2026-02-28T00:00:00.000Z");
		expect(() => parseSince("yesterday", NOW)).toThrow(/--since must be an ISO time or an age/);
		expect(() => parseSince("2027-01-01", NOW)).toThrow("--since is in the future");
		expect(() => parseSince(undefined, NOW)).toThrow(/--since needs a time/);
	});
});

describe("REPL subcommand dispatch", () => {
	const calls: string[][] = [];
	// The subcommands below never reach the cluster: the client is never used.
	const client = {} as GatewayClient;
	const command = commandOf(
		"things",
		"Things",
		["things list", "things show <id>"],
		{
			list: { options: { limit: { type: "string" } }, run: async (_c, args) => (calls.push(["list", ...args.positionals, String(args.values.limit)]), []) },
			show: { run: async (_c, args) => (calls.push(["show", String(parseId(args.positionals[0], "id"))]), []) },
		},
		"list",
	);

	beforeEach(() => calls.splice(0));

	it("prints the usage for `help`, runs the default subcommand with no word or an option first", async () => {
		expect(await command.run(client, ["help"])).toEqual([
			{ kind: "text", text: "things list" },
			{ kind: "text", text: "things show <id>" },
		]);
		await command.run(client, []);
		await command.run(client, ["--limit", "5"]);
		await command.run(client, ["show", "7"]);
		expect(calls).toEqual([["list", "undefined"], ["list", "5"], ["show", "7"]]);
	});

	it("refuses an unknown subcommand or option by name", async () => {
		await expect(command.run(client, ["frob"])).rejects.toThrow('unknown subcommand "frob" (things list | show)');
		await expect(command.run(client, ["show", "7", "--limit", "1"])).rejects.toThrow("Unknown option '--limit'");
		await expect(command.run(client, ["toString"])).rejects.toThrow(/unknown subcommand "toString"/);
		expect(calls).toEqual([]);
	});
});

describe("REPL formatting", () => {
	it("renders cells on one line: nothing as -, flags as yes/no, lists joined", () => {
		expect([null, undefined, "", [], true, false, [1, 2], { a: 1 }, "a\nb\tc"].map(cell)).toEqual(["-", "-", "-", "-", "yes", "no", "1, 2", '{"a":1}', "a b c"]);
		const isControl = (ch: string) => ch.charCodeAt(0) < 0x20 || ch.charCodeAt(0) === 0x7f;
		fc.assert(fc.property(fc.anything(), (value) => ![...cell(value)].some(isControl)));
	});

	it("builds tables from records, with headings", () => {
		expect(tableOf([{ id: 1, is_active: true, extra: "x" }, { id: 2 }], ["id", "is_active:active"], "Users")).toEqual({
			kind: "table",
			title: "Users",
			head: ["id", "active"],
			rows: [
				["1", "yes"],
				["2", "-"],
			],
		});
		expect(pairs([["updates/s", "0.50"]])).toEqual({ kind: "table", head: ["", ""], rows: [["updates/s", "0.50"]] });
	});

	it("computes rates and coarse ages", () => {
		expect(perSecond(30, 60)).toBe("0.50");
		expect(perSecond(0, 0)).toBe("0.00");
		expect(age("2026-03-01T11:59:15Z", NOW)).toBe("45s");
		expect(age("2026-03-01T11:48:00Z", NOW)).toBe("12m");
		expect(age("2026-03-01T09:00:00Z", NOW)).toBe("3h");
		expect(age("2026-02-27T12:00:00Z", NOW)).toBe("2d");
		expect(age(null, NOW)).toBe("-");
	});

	it("describes errors as the API does, with the fields, and usage errors with the usage", () => {
		expect(describeError(new UsageError("missing <id>"), ["bots remove <id>"])).toEqual(["error: missing <id>", "usage:", "  bots remove <id>"]);
		expect(describeError(fail.validation([{ field: "token", message: "Telegram rejected this token" }]))).toEqual([
			"error: Invalid token (VALIDATION_ERROR, 400)",
			"  token: Telegram rejected this token",
		]);
		expect(describeError(fail.notFound("Bot"))).toEqual(["error: Bot not found (NOT_FOUND, 404)"]);
		expect(describeError(new Error("secret internals"))).toEqual(["error: Internal server error (INTERNAL, 500)"]);
		const missing = new Errors.ServiceNotFoundError({ action: "ingest.stats" });
		expect(describeError(missing)).toEqual(["error: Service temporarily unavailable, try again later (UNAVAILABLE, 503)", "  no node runs ingest.stats right now"]);
	});

	it("lays out stats, and says which parts are unavailable instead of failing", () => {
		const snapshot: StatsSnapshot = {
			window_seconds: 60,
			ingest: { ok: true, value: { updates: 90 } },
			log: { ok: false, error: "no node runs broker.stats right now" },
			streams: [
				{ service: "realtime", node_id: "api-1", stats: { ok: true, value: { node_id: "api-1", feed_seq: 9, connections: 3, socketio: 2, websocket: 1, grpc_streams: 0, subscriptions: 4 } } },
				{ service: "grpc", node_id: "grpc-1", stats: { ok: true, value: { node_id: "grpc-1", feed_seq: 9, connections: 5, socketio: 0, websocket: 0, grpc_streams: 5, subscriptions: 5 } } },
				{ service: "realtime", node_id: "api-2", stats: { ok: false, error: "timeout" } },
			],
			queue: { ok: true, value: { total: 7, bots: [{ bot_id: 3, queued: 7, due: 2, max_attempts: 1, oldest_at: "2026-03-01T11:58:00Z" }] } },
			delivery: {
				ok: true,
				value: {
					deliveries: { pending: 4, in_flight: 1, failed: 2, dead: 0 },
					active_webhooks: 3,
					breakers: { closed: 2, open: 1, half_open: 0 },
					not_closed: [{ webhook_id: 8, url: "https://example.com/h", state: "open", open_until: "2026-03-01T12:01:00.000Z" }],
				},
			},
		};
		const blocks = formatStats(snapshot, NOW);
		expect(blocks[0]).toEqual({ kind: "table", title: "Traffic", head: ["", ""], rows: [["updates/s", "1.50"], ["updates (last 60 s)", "90"]] });
		expect(blocks[1]).toEqual({ kind: "text", text: "events: unavailable (no node runs broker.stats right now)" });
		const connections = blocks.find((b) => b.kind === "table" && b.title === "Live connections");
		expect(connections).toMatchObject({
			rows: [
				["api-1", "realtime", "2", "1", "0", "4", "9"],
				["grpc-1", "grpc", "0", "0", "5", "5", "9"],
				["api-2", "realtime", "?", "?", "?", "?", "unavailable (timeout)"],
				["total", "", "2", "1", "5", "9", ""],
			],
		});
		expect(blocks.find((b) => b.kind === "table" && b.title === "Outbound queue (7 queued)")).toMatchObject({ rows: [["3", "7", "2", "1", "2m"]] });
		expect(blocks.find((b) => b.kind === "table" && b.title === "Webhook deliveries")).toMatchObject({ rows: expect.arrayContaining([["breakers closed / open / half-open", "2 / 1 / 0"]]) });
		expect(blocks.find((b) => b.kind === "table" && b.title === "Breakers not closed")).toMatchObject({ rows: [["8", "open", "2026-03-01T12:01:00.000Z", "https://example.com/h"]] });
	});
});

describe("live connection counts", () => {
	it("counts connections by transport from their subscriber ids", () => {
		expect(streamStats(["io:a:1", "io:b:2", "ws:c", "grpc-d", "other"], 6)).toEqual({ connections: 5, socketio: 2, websocket: 1, grpc_streams: 1, subscriptions: 6 });
		expect(streamStats([], 0)).toEqual({ connections: 0, socketio: 0, websocket: 0, grpc_streams: 0, subscriptions: 0 });
	});
});
