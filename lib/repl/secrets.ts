/**
 * moleculer-repl's built-in `env` command prints the whole process environment: JWT_SECRET,
 * TOKEN_ENCRYPTION_KEYS and the passwords in DATABASE_URL and the like, onto an operator's screen
 * (or a shared terminal's scrollback). The REPL reads its configuration once at start, so after
 * that the secrets are masked in place: the names stay, so `env` still shows what is set.
 */
import type { REPLServer } from "node:repl";
import { isSecretName, REDACTED } from "../tracing";

/** A URL with its password masked; anything that is not a URL with a password is returned as is. */
function withoutPassword(value: string): string {
	let url: URL;
	try {
		url = new URL(value);
	} catch {
		return value;
	}
	if (!url.password) return value;
	url.password = REDACTED;
	return url.toString();
}

/** Masks, in place, every secret-named variable and the password of every URL-valued one. */
export function maskSecrets(env: NodeJS.ProcessEnv): void {
	for (const [name, value] of Object.entries(env)) {
		if (value === undefined || value === "") continue;
		if (isSecretName(name)) env[name] = REDACTED;
		else if (value.includes("://")) env[name] = value.split(",").map((part) => withoutPassword(part.trim())).join(",");
	}
}

/** `bots add <token>`: the token (the first word after the command). */
const BOT_ADD = /^(\s*bots\s+add\s+)(?!-)("[^"]*"|'[^']*'|\S+)/;
/** `--password <value>` / `--password=<value>`, anywhere on the line. */
const PASSWORD_OPTION = /(--password(?:\s+|=))("[^"]*"|'[^']*'|\S+)/g;

/**
 * A REPL line as it may be kept in the history (~/.moleculer_repl_history and the arrow keys):
 * a bot token or a typed password replaced by a placeholder.
 */
export function historyLine(line: string): string {
	return line.replace(BOT_ADD, "$1<token>").replace(PASSWORD_OPTION, "$1<password>");
}

/**
 * Keeps typed secrets out of a REPL's history (the arrow keys and the file moleculer-repl keeps,
 * ~/.moleculer_repl_history): node adds each line to the history before the REPL's "line" event
 * and writes the file a few milliseconds later, so the newest entry is redacted in between.
 */
export function redactHistory(server: REPLServer): void {
	server.on("line", () => {
		// Looked up on every line: loading the history file (setupHistory, not awaited by moleculer-repl) replaces the array.
		const { history } = server as unknown as { history: string[] };
		if (history.length > 0) history[0] = historyLine(history[0]!);
	});
}
