import argon2 from "argon2";

/** OWASP's argon2id baseline (19 MiB, 2 passes): about 20 ms here, paid at login, never per request. */
const OPTIONS = { type: argon2.argon2id, memoryCost: 19_456, timeCost: 2, parallelism: 1 } as const;

export function hashSecret(secret: string): Promise<string> {
	return argon2.hash(secret, OPTIONS);
}

export async function verifySecret(hash: string, secret: string): Promise<boolean> {
	try {
		return await argon2.verify(hash, secret);
	} catch {
		return false;
	}
}

/** A hash to verify against when the user does not exist, so both paths cost the same time. */
let decoy: Promise<string> | undefined;
export function decoyHash(): Promise<string> {
	decoy ??= hashSecret("decoy-password-that-matches-nothing");
	return decoy;
}
