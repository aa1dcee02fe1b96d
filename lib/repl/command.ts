/** The shape of a REPL command: a name, its usage, and subcommands that return what to print. */
import { parseCommand, UsageError, type ParsedCommand } from "./args";
import type { GatewayClient } from "./client";
import { text, type Block } from "./format";

export interface ReplCommand {
	name: string;
	summary: string;
	usage: readonly string[];
	run(client: GatewayClient, argv: readonly string[]): Promise<Block[]>;
}

type OptionSpec = Parameters<typeof parseCommand>[1];

export interface Subcommand {
	options?: OptionSpec;
	run(client: GatewayClient, args: ParsedCommand): Promise<Block[]>;
}

/**
 * A command made of subcommands (`users list`, `users create ...`): no word or `help` prints the
 * usage; an unknown word is a UsageError that lists the known ones. `defaultSub` runs when the
 * first word is an option or missing (`deliveries --webhook 3` is `deliveries list --webhook 3`).
 */
export function commandOf(name: string, summary: string, usage: readonly string[], subs: Record<string, Subcommand>, defaultSub?: string): ReplCommand {
	return {
		name,
		summary,
		usage,
		async run(client, argv) {
			const first = argv[0];
			const implicit = defaultSub !== undefined && (first === undefined || first.startsWith("-"));
			if (!implicit && (first === undefined || first === "help")) return usage.map((line) => text(line));
			const subName = implicit ? defaultSub : first!;
			const sub = Object.hasOwn(subs, subName) ? subs[subName] : undefined;
			if (!sub) throw new UsageError(`unknown subcommand "${subName}" (${name} ${Object.keys(subs).join(" | ")})`);
			const args = parseCommand(implicit ? [subName, ...argv] : argv, sub.options);
			return sub.run(client, args);
		},
	};
}
