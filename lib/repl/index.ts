/**
 * The gateway's commands for moleculer-repl (its `customCommands`, given to the broker as
 * `replCommands`; bin/repl.ts starts it). moleculer-repl hands each command the words typed after
 * its name; the command parses them itself (lib/repl/args.ts), calls actions (lib/repl/client.ts)
 * and returns blocks that are rendered here with the `table` moleculer-repl bundles. An error is
 * printed, never thrown: the REPL stays at its prompt.
 */
import type { ServiceBroker } from "moleculer";
import { SerialQueue } from "../async";
import { gatewayClient, type GatewayClient } from "./client";
import type { ReplCommand } from "./command";
import { describeError, type Block } from "./format";
import { apikeys, grants, users } from "./commands/identity";
import { stats } from "./commands/stats";
import { bots, deliveries, webhooks } from "./commands/traffic";

export const REPL_COMMANDS: readonly ReplCommand[] = [users, apikeys, grants, bots, webhooks, deliveries, stats];

type Border = Record<string, string>;

/** What moleculer-repl passes to a custom command's action besides the broker and the params. */
export interface ReplHelpers {
	table(data: string[][], config?: { border?: Border; drawHorizontalLine?: (index: number, size: number) => boolean }): string;
	getBorderCharacters(name: "honeywell" | "norc" | "ramac" | "void"): Border;
	kleur: { bold(text: string): string; gray(text: string): string; red(text: string): string };
}

/** moleculer-repl's custom command definition (moleculer-repl 0.7: src/index.js, registerCustomCommands). */
export interface CustomCommand {
	command: string;
	description: string;
	allowUnknownOptions: boolean;
	parse(this: unknown, command: { args: string[]; params?: unknown }): void;
	action(broker: ServiceBroker, params: { argv: string[] }, helpers: ReplHelpers): Promise<void>;
}

export function renderBlocks(blocks: readonly Block[], helpers: ReplHelpers): string {
	const { kleur } = helpers;
	const border = Object.fromEntries(Object.entries(helpers.getBorderCharacters("honeywell")).map(([k, c]) => [k, kleur.gray(c)]));
	const out: string[] = [];
	for (const block of blocks) {
		if (block.kind === "text") {
			out.push(block.text);
			continue;
		}
		if (block.title) out.push(kleur.bold(block.title));
		if (block.rows.length === 0) {
			out.push("  (none)");
			continue;
		}
		const headless = block.head.every((h) => h === "");
		const data = headless ? block.rows : [block.head.map((h) => kleur.bold(h)), ...block.rows];
		out.push(helpers.table(data, { border, drawHorizontalLine: (i, size) => i === 0 || i === size || (!headless && i === 1) }).trimEnd());
	}
	return out.join("\n");
}

/** Runs one command line's words and returns what to print (errors included). */
export async function runCommand(command: ReplCommand, client: GatewayClient, argv: readonly string[]): Promise<{ ok: boolean; blocks: Block[] }> {
	try {
		return { ok: true, blocks: await command.run(client, argv) };
	} catch (err) {
		return { ok: false, blocks: describeError(err, command.usage).map((line) => ({ kind: "text", text: line })) };
	}
}

/**
 * Commands run one at a time, in the order typed: the REPL evaluates every line as it arrives, so
 * pasted or piped lines (`npm run repl < script`) would otherwise overlap and finish out of order.
 */
const commands = new SerialQueue();

/** Gateway commands that printed an error since the process started. */
let failures = 0;

/**
 * The exit status once the input has ended: 1 when a script (`npm run repl < script.txt`, stdin
 * not a terminal) had a gateway command fail, so the script's caller can tell; 0 otherwise (an
 * operator at the prompt saw the errors). Moleculer's own commands (`call`...) are not counted.
 */
export function exitCodeAtEndOfInput(stdin: { isTTY?: boolean } = process.stdin): number {
	return !stdin.isTTY && failures > 0 ? 1 : 0;
}

/** Resolves once every command started so far has printed its output. */
export async function whenIdle(): Promise<void> {
	while (commands.size > 0) await commands.run(async () => undefined);
}

/** The definitions for the broker's `replCommands` option; moleculer-repl hands each action its broker. */
export function replCommands(): CustomCommand[] {
	return REPL_COMMANDS.map((command) => ({
		command: command.name,
		description: command.summary,
		allowUnknownOptions: true,
		// Every word after the command's name, unparsed: the command reads them (strings stay strings).
		parse(this: unknown, cmd) {
			cmd.params = { argv: [...cmd.args] };
		},
		action(broker, params, helpers) {
			const argv = params.argv;
			return commands.run(async () => {
				// Let the previous command's prompt come out first (the REPL prints it a few ticks later).
				await new Promise((resolve) => setImmediate(resolve));
				const { ok, blocks } = await runCommand(command, gatewayClient(broker), argv);
				if (!ok) failures += 1;
				const rendered = renderBlocks(blocks, helpers);
				console.log(ok ? rendered : helpers.kleur.red(rendered));
			});
		},
	}));
}
