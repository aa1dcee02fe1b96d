/**
 * Cursor paging for every list of the API: `{data, next_cursor}`, `?limit` (default 50, max 200),
 * `?cursor` an opaque token naming the last row seen. Rows are ordered by a numeric key.
 *
 * A cursor names its list and is signed (HMAC with a key derived from JWT_SECRET, the same on every
 * node): one of another list, or one made up, is a 400 naming `cursor`, as API.md says, instead of
 * a silently wrong page.
 */
import { createHmac, timingSafeEqual } from "node:crypto";
import { fail } from "./errors";

export const DEFAULT_LIMIT = 50;
export const MAX_LIMIT = 200;

/**
 * A list's name with the filters it was asked with: a cursor of one filtered list (chats of bot 1)
 * is refused by another (chats of bot 2, or every chat), as one of another list is.
 */
export function filteredList(name: string, filters: Record<string, string | number | undefined>): string {
	const given = Object.entries(filters).filter(([, value]) => value !== undefined).map(([key, value]) => `${key}=${value}`);
	return given.length > 0 ? `${name}?${given.join("&")}` : name;
}

/** fastest-validator params shared by every list action. */
export const pageParams = {
	limit: { type: "number", integer: true, min: 1, max: MAX_LIMIT, optional: true, convert: true },
	cursor: { type: "string", max: 200, optional: true },
} as const;

export interface Page<T> {
	data: T[];
	next_cursor: string | null;
}

const MAC_BYTES = 12;

function notOurs(): never {
	throw fail.validation([{ field: "cursor", message: "The 'cursor' is not a cursor this API returned for this list." }]);
}

export class Cursors {
	private readonly key: Buffer;

	/** `secret`: the node's JWT secret; cursors are keyed by a value derived from it, not by it. */
	constructor(secret: string) {
		this.key = createHmac("sha256", secret).update("tgw:cursors").digest();
	}

	private mac(list: string, payload: string): Buffer {
		return createHmac("sha256", this.key).update(`${list}\n${payload}`).digest().subarray(0, MAC_BYTES);
	}

	/** A cursor of `list` carrying `payload` (no newline in either). */
	encode(list: string, payload: string): string {
		return `${Buffer.from(payload).toString("base64url")}.${this.mac(list, payload).toString("base64url")}`;
	}

	/** The payload of a cursor this API made for `list`; null without one; a 400 naming `cursor` otherwise. */
	decode(list: string, cursor: string | undefined): string | null {
		if (cursor === undefined || cursor === "") return null;
		const [payloadPart, macPart, extra] = cursor.split(".");
		if (payloadPart === undefined || macPart === undefined || extra !== undefined) notOurs();
		const payload = Buffer.from(payloadPart, "base64url").toString();
		const given = Buffer.from(macPart, "base64url");
		const expected = this.mac(list, payload);
		if (given.length !== expected.length || !timingSafeEqual(given, expected) || this.encode(list, payload) !== cursor) notOurs();
		return payload;
	}

	/** The key after which the next page of `list` starts. */
	after(list: string, cursor: string | undefined): number | null {
		const payload = this.decode(list, cursor);
		if (payload === null) return null;
		const key = /^-?\d{1,19}$/.test(payload) ? Number(payload) : Number.NaN;
		if (!Number.isSafeInteger(key)) notOurs();
		return key;
	}

	/** Rows fetched with `limit + 1` become a page of `list`: the extra row only says there is more. */
	page<R, T>(list: string, rows: R[], limit: number, keyOf: (row: R) => number, view: (row: R) => T): Page<T> {
		const more = rows.length > limit;
		const pageRows = more ? rows.slice(0, limit) : rows;
		return {
			data: pageRows.map(view),
			next_cursor: more && pageRows.length > 0 ? this.encode(list, String(keyOf(pageRows[pageRows.length - 1]!))) : null,
		};
	}
}
