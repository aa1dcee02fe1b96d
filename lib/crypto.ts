/**
 * Secrets at rest (bot tokens, Telegram webhook secrets, outbound webhook secrets): AES-256-GCM with
 * a random 96-bit IV, sealed under the active key of TOKEN_ENCRYPTION_KEYS and labelled with that
 * key's id, so old rows still open after the active key changes until they are re-encrypted.
 * The purpose (e.g. "bot-token") is bound as additional data: a ciphertext cannot be moved to
 * another column and still open.
 */
import { createCipheriv, createDecipheriv, randomBytes } from "node:crypto";
import type { EncryptionKey } from "./config";

const IV_BYTES = 12;
const TAG_BYTES = 16;

export interface Sealed {
	ciphertext: string;
	keyId: string;
}

export function seal(keys: EncryptionKey[], purpose: string, plaintext: string): Sealed {
	const active = keys[0];
	if (!active) throw new Error("no encryption key configured");
	const iv = randomBytes(IV_BYTES);
	const cipher = createCipheriv("aes-256-gcm", active.key, iv);
	cipher.setAAD(Buffer.from(purpose));
	const body = Buffer.concat([cipher.update(plaintext, "utf8"), cipher.final()]);
	return { ciphertext: Buffer.concat([iv, cipher.getAuthTag(), body]).toString("base64"), keyId: active.id };
}

export function unseal(keys: EncryptionKey[], purpose: string, sealed: Sealed): string {
	const key = keys.find((k) => k.id === sealed.keyId);
	if (!key) throw new Error(`encryption key "${sealed.keyId}" is not in TOKEN_ENCRYPTION_KEYS`);
	const raw = Buffer.from(sealed.ciphertext, "base64");
	const decipher = createDecipheriv("aes-256-gcm", key.key, raw.subarray(0, IV_BYTES));
	decipher.setAAD(Buffer.from(purpose));
	decipher.setAuthTag(raw.subarray(IV_BYTES, IV_BYTES + TAG_BYTES));
	return Buffer.concat([decipher.update(raw.subarray(IV_BYTES + TAG_BYTES)), decipher.final()]).toString("utf8");
}

export function isActiveKey(keys: EncryptionKey[], keyId: string): boolean {
	return keys[0]?.id === keyId;
}
