/**
 * The window of a chat's history one page reads: newest first before a seq, or oldest first after
 * one (up to another). The next page's cursor carries the whole window, so `?cursor=` alone goes on
 * in the same direction and within the same bounds.
 */
import { fail } from "../../lib/errors";

export interface HistoryWindow {
	ascending: boolean;
	/** Strictly after this seq (oldest first only). */
	after?: number;
	/** Strictly before this seq. */
	before?: number;
}

const CURSOR = /^h:(a|d):(\d{1,16})?:(\d{1,16})?$/;

function badCursor(): never {
	throw fail.validation([{ field: "cursor", message: "The 'cursor' is not a cursor this API returned." }]);
}

/** The window asked for: a cursor (ours, from an earlier page) takes the place of after_seq / before_seq. */
export function historyWindow(query: { after_seq?: number; before_seq?: number }, cursor: string | undefined): HistoryWindow {
	if (cursor === undefined || cursor === "") {
		return { ascending: query.after_seq !== undefined, ...(query.after_seq !== undefined ? { after: query.after_seq } : {}), ...(query.before_seq !== undefined ? { before: query.before_seq } : {}) };
	}
	const decoded = Buffer.from(cursor, "base64url").toString();
	const match = CURSOR.exec(decoded);
	// Cursors given out before they carried the window held just the last seq ("k:<seq>").
	const legacy = /^k:(\d{1,16})$/.exec(decoded);
	if (legacy) {
		const seq = Number(legacy[1]);
		return query.after_seq !== undefined ? { ascending: true, after: seq, ...(query.before_seq !== undefined ? { before: query.before_seq } : {}) } : { ascending: false, before: seq };
	}
	if (!match) badCursor();
	const [, direction, after, before] = match;
	const window: HistoryWindow = { ascending: direction === "a", ...(after ? { after: Number(after) } : {}), ...(before ? { before: Number(before) } : {}) };
	if (![window.after, window.before].every((seq) => seq === undefined || Number.isSafeInteger(seq))) badCursor();
	return window;
}

/** The cursor of the page after the one that ended at `lastSeq`. */
export function nextHistoryCursor(window: HistoryWindow, lastSeq: number): string {
	const next: HistoryWindow = window.ascending ? { ...window, after: lastSeq } : { ...window, before: lastSeq };
	return Buffer.from(`h:${next.ascending ? "a" : "d"}:${next.after ?? ""}:${next.before ?? ""}`).toString("base64url");
}
