/** lib/repl: a scripted run (`npm run repl < script.txt`) ends with exit status 1 when a command failed. */
import type { ServiceBroker } from "moleculer";
import { exitCodeAtEndOfInput, replCommands, whenIdle, type ReplHelpers } from "../../lib/repl";

const helpers: ReplHelpers = {
	table: (rows) => rows.map((row) => row.join(" ")).join("\n"),
	getBorderCharacters: () => ({}),
	kleur: { bold: (s) => s, gray: (s) => s, red: (s) => s },
};
const broker = { call: () => Promise.reject(new Error("no broker in this test")) } as unknown as ServiceBroker;

function command(name: string) {
	const found = replCommands().find((c) => c.command === name);
	if (!found) throw new Error(`no command ${name}`);
	return found;
}

describe("exitCodeAtEndOfInput", () => {
	beforeEach(() => jest.spyOn(console, "log").mockImplementation(() => undefined));
	afterEach(() => jest.restoreAllMocks());

	it("is 0 while every command succeeded, 1 for a script once one failed, 0 at a terminal", async () => {
		await command("users").action(broker, { argv: ["help"] }, helpers);
		await whenIdle();
		expect(exitCodeAtEndOfInput({ isTTY: false })).toBe(0);

		await command("deliveries").action(broker, { argv: ["--status", "lost"] }, helpers);
		await whenIdle();
		expect(console.log).toHaveBeenLastCalledWith(expect.stringContaining("error: --status must be one of"));
		expect(exitCodeAtEndOfInput({ isTTY: false })).toBe(1);
		expect(exitCodeAtEndOfInput({ isTTY: undefined })).toBe(1);
		// An operator at the prompt saw the error: leaving with Ctrl+D is not a failure.
		expect(exitCodeAtEndOfInput({ isTTY: true })).toBe(0);

		await command("users").action(broker, { argv: ["help"] }, helpers);
		expect(exitCodeAtEndOfInput({ isTTY: false })).toBe(1);
	});
});
