/**
 * moleculer-repl's built-in `env` command prints the whole process environment: JWT_SECRET,
 * TOKEN_ENCRYPTION_KEYS and the passwords in DATABASE_URL and the like, onto an operator's screen
 * (or a shared terminal's scrollback). The REPL reads its configuration once at start, so after
 * that the secrets are masked in place: the names stay, so `env` still shows what is set.
 */
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
