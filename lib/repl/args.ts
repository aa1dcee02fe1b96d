/**
 * Argument handling for the REPL's commands: each command gets the words typed after its name
 * (moleculer-repl hands them over unparsed) and reads them with node's parseArgs, so every value
 * stays a string ("007" is a username, not 7) and a mistake is a UsageError naming the word.
 */
import { parseArgs, type ParseArgsConfig } from "node:util";

export class UsageError extends Error {
	constructor(message: string) {
		super(message);
		this.name = "UsageError";
	}
}

type OptionSpec = NonNullable<ParseArgsConfig["options"]>;

export interface ParsedCommand {
	/** The first word: what to do ("list", "create"...); "" when none was given. */
	sub: string;
	positionals: string[];
	values: Record<string, string | string[] | boolean | undefined>;
}

/** Splits `<sub> [positionals] [--options]`; unknown options and missing values are UsageErrors. */
export function parseCommand(argv: readonly string[], options: OptionSpec = {}): ParsedCommand {
	let parsed;
	try {
		parsed = parseArgs({ args: [...argv], options, allowPositionals: true, strict: true });
	} catch (err) {
		// parseArgs explains itself but ends with advice for scripts ("To specify a positional..."): keep the first sentence.
		const message = (err as Error).message.split(/\.\s/)[0]!.replace(/\.$/, "");
		throw new UsageError(message);
	}
	const [sub = "", ...positionals] = parsed.positionals;
	return { sub, positionals, values: parsed.values as ParsedCommand["values"] };
}

/** The n-th positional, or a UsageError naming it. */
export function required(positionals: readonly string[], index: number, name: string): string {
	const value = positionals[index];
	if (value === undefined || value === "") throw new UsageError(`missing <${name}>`);
	return value;
}

/** No more positionals than the command takes. */
export function noExtra(positionals: readonly string[], count: number): void {
	if (positionals.length > count) throw new UsageError(`unexpected argument "${positionals[count]}"`);
}

export function parseId(value: string | undefined, name: string): number {
	const id = /^\d{1,15}$/.test(value ?? "") ? Number(value) : Number.NaN;
	if (!Number.isSafeInteger(id) || id <= 0) throw new UsageError(`${name} must be a positive whole number, got "${value ?? ""}"`);
	return id;
}

export function optionalInt(value: unknown, name: string, min: number, max: number): number | undefined {
	if (value === undefined) return undefined;
	const n = typeof value === "string" && /^\d{1,9}$/.test(value) ? Number(value) : Number.NaN;
	if (!Number.isInteger(n) || n < min || n > max) throw new UsageError(`--${name} must be a whole number from ${min} to ${max}, got "${String(value)}"`);
	return n;
}

export function stringOption(value: unknown): string | undefined {
	return typeof value === "string" ? value : undefined;
}

export function listOption(value: unknown): string[] {
	if (value === undefined) return [];
	return (Array.isArray(value) ? value : [value]).flatMap((v) => String(v).split(",")).map((v) => v.trim()).filter(Boolean);
}

/** A user named by id ("12") or by username ("alice"; "@007" for a username made of digits). */
export type UserRef = { id: number } | { username: string };

export function parseUserRef(value: string): UserRef {
	if (/^\d+$/.test(value)) return { id: parseId(value, "user id") };
	const username = value.replace(/^@/, "");
	if (!/^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/.test(username)) throw new UsageError(`"${value}" is neither a user id nor a username`);
	return { username: username.toLowerCase() };
}

export const RIGHTS = ["can_read", "can_send", "can_manage"] as const;
export type RightName = (typeof RIGHTS)[number];

/** Chat rights by their names ("can_send") or short names ("send"); at least one when `min` is 1. */
export function parseRights(words: readonly string[], min = 1): RightName[] {
	const rights = new Set<RightName>();
	for (const word of words.flatMap((w) => w.split(",")).filter(Boolean)) {
		const name = (word.startsWith("can_") ? word : `can_${word}`).toLowerCase();
		if (!(RIGHTS as readonly string[]).includes(name)) throw new UsageError(`unknown right "${word}" (rights: ${RIGHTS.join(", ")})`);
		rights.add(name as RightName);
	}
	if (rights.size < min) throw new UsageError(`name at least one right (${RIGHTS.join(", ")})`);
	return RIGHTS.filter((r) => rights.has(r));
}

const DURATION = /^(\d{1,6})(s|m|h|d)$/;
const UNIT_MS = { s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 } as const;

/** `--since` for a replay: an ISO time ("2026-01-02T03:00:00Z") or an age ("30m", "2h", "7d"). */
export function parseSince(value: string | undefined, now = Date.now()): Date {
	if (value === undefined || value === "") throw new UsageError("--since needs a time (ISO 8601) or an age such as 30m, 2h, 7d");
	const age = DURATION.exec(value);
	if (age) return new Date(now - Number(age[1]) * UNIT_MS[age[2] as keyof typeof UNIT_MS]);
	const date = /^\d{4}-\d{2}-\d{2}/.test(value) ? new Date(value) : new Date(Number.NaN);
	if (Number.isNaN(date.getTime())) throw new UsageError(`--since must be an ISO time or an age such as 30m, 2h, 7d, got "${value}"`);
	if (date.getTime() > now) throw new UsageError("--since is in the future");
	return date;
}
