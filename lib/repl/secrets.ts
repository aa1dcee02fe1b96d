/**
 * moleculer-repl's built-in `env` command prints the whole process environment: JWT_SECRET,
 * TOKEN_ENCRYPTION_KEYS and the passwords in DATABASE_URL and the like, onto an operator's screen
 * (or a shared terminal's scrollback). The REPL reads its configuration once at start, so after
 * that the secrets are masked in place: the names stay, so `env` still shows what is set.
 */
import type { REPLServer } from "node:repl";
import { withoutPassword } from "../middlewares/hidden-connection-secrets";
import { isSecretName, REDACTED } from "../tracing";

/** Masks, in place, every secret-named variable and the password of every URL-valued one. */
export function maskSecrets(env: NodeJS.ProcessEnv): void {
	for (const [name, value] of Object.entries(env)) {
		if (value === undefined || value === "") continue;
		if (isSecretName(name)) env[name] = REDACTED;
		else if (value.includes("://")) env[name] = value.split(",").map((part) => withoutPassword(part.trim())).join(",");
	}
}

/** `bots add <token>`: the first word after the command, whatever its form. */
const BOT_ADD = /^(\s*bots\s+add\s+)(?!-)("[^"]*"|'[^']*'|\S+)/;
/** A bot token (`<bot id>:<secret>`) or an API key, wherever it stands: `bots add --name X <token>`, `call bots.create --token ...`, JSON params. */
const BOT_TOKEN = /\b\d{3,}:[A-Za-z0-9_-]{20,}/g;
const API_KEY = /\btgw_[A-Za-z0-9_-]{20,}/g;
/** `--password <value>` / `--token=<value>` and the like, anywhere on the line. */
const SECRET_OPTION = /(--(password|token|refresh_token|credential|secret|api_key)(?:\s+|=))("[^"]*"|'[^']*'|\S+)/g;

/**
 * A REPL line as it may be kept in the history (~/.moleculer_repl_history and the arrow keys):
 * a bot token or a typed password replaced by a placeholder.
 */
export function historyLine(line: string): string {
	return line
		.replace(BOT_ADD, "$1<token>")
		.replace(SECRET_OPTION, (_match, option: string, name: string) => `${option}<${name}>`)
		.replace(BOT_TOKEN, "<token>")
		.replace(API_KEY, "<api_key>");
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
