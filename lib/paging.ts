/**
 * Cursor paging for every list of the API: `{data, next_cursor}`, `?limit` (default 50, max 200),
 * `?cursor` an opaque token naming the last row seen. Rows are ordered by a numeric key.
 */
import { fail } from "./errors";

export const DEFAULT_LIMIT = 50;
export const MAX_LIMIT = 200;

/** fastest-validator params shared by every list action. */
export const pageParams = {
	limit: { type: "number", integer: true, min: 1, max: MAX_LIMIT, optional: true, convert: true },
	cursor: { type: "string", max: 200, optional: true },
} as const;

export interface Page<T> {
	data: T[];
	next_cursor: string | null;
}

export function encodeCursor(key: number): string {
	return Buffer.from(`k:${key}`).toString("base64url");
}

/** The key after which the next page starts; a cursor that is not ours is a 400 naming `cursor`. */
export function decodeCursor(cursor: string | undefined): number | null {
	if (cursor === undefined || cursor === "") return null;
	const decoded = Buffer.from(cursor, "base64url").toString();
	const match = /^k:(-?\d{1,19})$/.exec(decoded);
	const key = match ? Number(match[1]) : Number.NaN;
	if (!Number.isSafeInteger(key)) throw fail.validation([{ field: "cursor", message: "The 'cursor' is not a cursor this API returned." }]);
	return key;
}

/** Rows fetched with `limit + 1` become a page: the extra row only says there is more. */
export function toPage<R, T>(rows: R[], limit: number, keyOf: (row: R) => number, view: (row: R) => T): Page<T> {
	const more = rows.length > limit;
	const pageRows = more ? rows.slice(0, limit) : rows;
	return {
		data: pageRows.map(view),
		next_cursor: more && pageRows.length > 0 ? encodeCursor(keyOf(pageRows[pageRows.length - 1]!)) : null,
	};
}
