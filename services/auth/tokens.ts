/**
 * JWT access and refresh tokens (HS256). Refresh tokens are recorded by the hash of their jti so
 * each can be spent once, and a family (one login and its rotations) can be revoked. Access tokens
 * are not recorded; they name their family, so revoking it (logout, reuse, a new password) ends
 * them too.
 */
import { createHash, createSecretKey, randomBytes, randomUUID, type KeyObject } from "node:crypto";
import jwt from "jsonwebtoken";
import type { GatewayConfig } from "../../lib/config";

export type TokenType = "access" | "refresh";

export interface TokenClaims {
	sub: string;
	typ: TokenType;
	jti: string;
	/**
	 * The family every rotation of one login belongs to: always on refresh tokens; on access tokens
	 * issued since they carry it (older ones end only at their expiry).
	 */
	fam?: string;
	iat: number;
	exp: number;
}

export interface IssuedToken {
	token: string;
	jti: string;
	expiresAt: Date;
}

type JwtSettings = GatewayConfig["jwt"];

/** How far ahead of this node's clock another node's token may say it was issued (clocks drift). */
const ISSUED_AHEAD_TOLERANCE_MS = 60_000;

/**
 * jsonwebtoken turns a string secret into a KeyObject on every call (about 0.45 ms here); handing it
 * the KeyObject made once brings a verification down to about 10 µs.
 */
const keyObjects = new Map<string, KeyObject>();
function signingKey(secret: string): KeyObject {
	let key = keyObjects.get(secret);
	if (!key) {
		// loadConfig never lets an empty secret through; this holds even if a caller builds settings by hand.
		if (secret.length < 32) throw new Error("JWT secret missing or shorter than 32 characters");
		key = createSecretKey(Buffer.from(secret, "utf8"));
		keyObjects.set(secret, key);
	}
	return key;
}

export function issueToken(settings: JwtSettings, type: TokenType, userId: number, family?: string): IssuedToken {
	const jti = randomUUID();
	const ttl = type === "access" ? settings.accessTtlSeconds : settings.refreshTtlSeconds;
	const payload: Record<string, unknown> = { typ: type, ...(family ? { fam: family } : {}) };
	const token = jwt.sign(payload, signingKey(settings.secret), {
		algorithm: "HS256",
		subject: String(userId),
		jwtid: jti,
		issuer: settings.issuer,
		audience: settings.audience,
		expiresIn: ttl,
	});
	return { token, jti, expiresAt: new Date(Date.now() + ttl * 1000) };
}

export class InvalidTokenError extends Error {
	constructor(readonly reason: "expired" | "invalid") {
		super(reason === "expired" ? "Token expired" : "Invalid token");
	}
}

/**
 * Verifies signature (HS256 only: `none` and every other algorithm are refused), issuer, audience,
 * expiry, and that the token is of the expected type and carries a jti, a numeric subject, an
 * expiry and an issue time not ahead of this node's clock.
 */
export function verifyToken(settings: JwtSettings, token: string, type: TokenType, options: { ignoreExpiration?: boolean } = {}): TokenClaims & { userId: number } {
	let claims: jwt.JwtPayload;
	try {
		const decoded = jwt.verify(token, signingKey(settings.secret), {
			algorithms: ["HS256"],
			issuer: settings.issuer,
			audience: settings.audience,
			ignoreExpiration: options.ignoreExpiration ?? false,
			complete: false,
		});
		if (typeof decoded === "string") throw new InvalidTokenError("invalid");
		claims = decoded;
	} catch (err) {
		if (err instanceof InvalidTokenError) throw err;
		throw new InvalidTokenError((err as Error).name === "TokenExpiredError" ? "expired" : "invalid");
	}
	const userId = Number(claims.sub);
	if (claims.typ !== type || typeof claims.jti !== "string" || !Number.isSafeInteger(userId) || userId <= 0) {
		throw new InvalidTokenError("invalid");
	}
	// jsonwebtoken checks exp only when there is one: a token without it (or issued in the future)
	// was never signed here, and would never expire (the resolved principal's expiry was NaN).
	if (!Number.isFinite(claims.exp) || !Number.isFinite(claims.iat) || claims.iat! * 1000 > Date.now() + ISSUED_AHEAD_TOLERANCE_MS) {
		throw new InvalidTokenError("invalid");
	}
	if (type === "refresh" && typeof claims.fam !== "string") throw new InvalidTokenError("invalid");
	return { ...(claims as TokenClaims), userId };
}

export function sha256(value: string): string {
	return createHash("sha256").update(value).digest("hex");
}

export function newFamilyId(): string {
	return randomBytes(16).toString("hex");
}
