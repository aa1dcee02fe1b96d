/**
 * The NATS and Redis URLs carry their passwords, and Moleculer keeps them in the broker's options
 * and the transporter's: moleculer-repl's `info` command prints both, and `$node.options` answers
 * them to any node of the cluster. Once the broker has connected (the clients keep their own copies
 * for reconnecting), they are masked in place there.
 */
import type { ServiceBroker } from "moleculer";
import { REDACTED } from "../tracing";

/** A URL with its password masked; anything that is not a URL with a password is returned as is. */
export function withoutPassword(value: string): string {
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

const CREDENTIAL_KEY = /^(pass|password|token|auth_token|authToken|nkey|sasl)$/i;

/** Masks, in place, passwords in URL strings and credential-named keys, a few levels deep. */
export function maskConnectionSecrets(options: unknown, depth = 0): void {
	if (!options || typeof options !== "object" || depth > 3) return;
	const record = options as Record<string, unknown>;
	for (const [key, value] of Object.entries(record)) {
		if (typeof value === "string") {
			if (CREDENTIAL_KEY.test(key) && value !== "") record[key] = REDACTED;
			else if (value.includes("://")) record[key] = value.split(",").map((part) => withoutPassword(part.trim())).join(",");
		} else if (typeof value === "object") {
			maskConnectionSecrets(value, depth + 1);
		}
	}
}

interface BrokerInternals {
	transit?: { tx?: { opts?: unknown } };
	cacher?: { opts?: unknown };
}

export const HiddenConnectionSecretsMiddleware = {
	name: "HiddenConnectionSecrets",
	started(broker: ServiceBroker): void {
		const internals = broker as unknown as BrokerInternals;
		for (const options of [broker.options.transporter, broker.options.cacher, internals.transit?.tx?.opts, internals.cacher?.opts]) {
			maskConnectionSecrets(options);
		}
	},
};
