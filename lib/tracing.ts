/**
 * Tracing exporters. Moleculer's Zipkin exporter uploads its queue on a timer and drops what is
 * still queued when the broker stops, so the spans of a node's last seconds (often the interesting
 * ones: a shutdown, a crash loop) never arrive. This one uploads the rest before it stops.
 */
import { TracerExporters } from "moleculer";

/** The parts of Moleculer's Zipkin exporter this subclass reads (its typings declare none). */
interface ZipkinInternals {
	queue: unknown[];
	opts: { baseURL: string; headers?: Record<string, string> };
	logger: { warn(...args: unknown[]): void };
	generateTracingData(): unknown[];
}

/** How long a stopping node waits for Zipkin to take its last spans. */
const FINAL_UPLOAD_TIMEOUT_MS = 3_000;

/** Moleculer's typings give the exporters neither options nor stop(); this is what they have. */
const ZipkinExporter = TracerExporters.Zipkin as unknown as new (options: { baseURL: string; interval: number }) => { stop(): Promise<void> };

export class FlushingZipkinExporter extends ZipkinExporter {
	override async stop(): Promise<void> {
		await super.stop();
		const self = this as unknown as ZipkinInternals;
		if (self.queue.length === 0) return;
		const spans = self.generateTracingData();
		self.queue.length = 0;
		try {
			// fetch refuses a URL with credentials (and its error quoted them into the log): they go as
			// Basic authorization, as Moleculer's own uploads send them.
			const target = new URL(`${self.opts.baseURL}/api/v2/spans`);
			const basic = target.username || target.password ? Buffer.from(`${decodeURIComponent(target.username)}:${decodeURIComponent(target.password)}`).toString("base64") : null;
			target.username = "";
			target.password = "";
			const res = await fetch(target, {
				method: "POST",
				body: JSON.stringify(spans),
				headers: { "content-type": "application/json", ...(basic ? { authorization: `Basic ${basic}` } : {}), ...self.opts.headers },
				signal: AbortSignal.timeout(FINAL_UPLOAD_TIMEOUT_MS),
			});
			if (!res.ok) self.logger.warn(`Zipkin refused the last ${spans.length} spans: ${res.status}`);
		} catch (err) {
			self.logger.warn(`Could not upload the last ${spans.length} spans to Zipkin: ${(err as Error).message}`);
		}
	}
}

/** Keys whose values never go into a span: passwords, tokens, keys, secrets and credentials. */
const SECRET_KEY = /pass(word)?|token|secret|api[_-]?key|credential|authorization/i;
export const isSecretName = (name: string): boolean => SECRET_KEY.test(name);
/** Deeper than this, a value is left out of the span rather than copied. */
const MAX_TAG_DEPTH = 6;
export const REDACTED = "[redacted]";

/** A URL's credentials (user:password@) and query, which may carry a receiver's secret (?sig=, ?token=). */
const URL_SECRETS = /^([a-z][a-z0-9+.-]*:\/\/)(?:[^/?#@]*@)?([^?#]*)(\?[^#]*)?(#.*)?$/i;

/** A URL with its credentials and query replaced; any other string as it is. */
function redactUrl(value: string): string {
	if (!value.includes("://")) return value;
	const match = URL_SECRETS.exec(value);
	if (!match) return value;
	const [, scheme, rest, query] = match;
	const hadCredentials = value.slice(scheme!.length).split(/[/?#]/, 1)[0]!.includes("@");
	return `${scheme}${hadCredentials ? `${REDACTED}@` : ""}${rest}${query ? `?${REDACTED}` : ""}`;
}

/** A copy of `value` with every secret-named key's value replaced, and URLs' credentials and queries; deeper nesting is cut off. */
export function redactSecrets(value: unknown, depth = 0): unknown {
	if (typeof value === "string") return redactUrl(value);
	if (value === null || typeof value !== "object") return value;
	if (depth >= MAX_TAG_DEPTH) return "[too deep]";
	if (Array.isArray(value)) return value.map((item) => redactSecrets(item, depth + 1));
	const copy: Record<string, unknown> = {};
	for (const [key, inner] of Object.entries(value)) copy[key] = SECRET_KEY.test(key) ? REDACTED : redactSecrets(inner, depth + 1);
	return copy;
}

/**
 * Span tags of action calls and events. Moleculer copies every param into the span by default, so a
 * login's password, a bot's token or an API key would reach the console or Zipkin; here the params go
 * in with those values replaced. Called again with the response when the call ends: responses are
 * left out (tokens and new keys travel in them).
 */
export function redactedTags(this: unknown, ctx: { params?: unknown }, ...response: unknown[]): Record<string, unknown> | undefined {
	if (response.length > 0) return undefined;
	return { params: redactSecrets(ctx.params) };
}
