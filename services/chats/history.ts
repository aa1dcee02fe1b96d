/**
 * The window of a chat's history one page reads: newest first before a seq, or oldest first after
 * one (up to another). The next page's cursor carries the whole window, so `?cursor=` alone goes on
 * in the same direction and within the same bounds.
 */
import { fail } from "../../lib/errors";
import type { Cursors } from "../../lib/paging";

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

/**
 * The window asked for: a cursor (ours, from an earlier page of `list`, which names the chat) takes the
 * place of after_seq / before_seq.
 */
export function historyWindow(query: { after_seq?: number; before_seq?: number }, cursor: string | undefined, cursors: Cursors, list: string): HistoryWindow {
	const payload = cursors.decode(list, cursor);
	if (payload === null) {
		return { ascending: query.after_seq !== undefined, ...(query.after_seq !== undefined ? { after: query.after_seq } : {}), ...(query.before_seq !== undefined ? { before: query.before_seq } : {}) };
	}
	const match = CURSOR.exec(payload);
	if (!match) badCursor();
	const [, direction, after, before] = match;
	const window: HistoryWindow = { ascending: direction === "a", ...(after ? { after: Number(after) } : {}), ...(before ? { before: Number(before) } : {}) };
	if (![window.after, window.before].every((seq) => seq === undefined || Number.isSafeInteger(seq))) badCursor();
	return window;
}

/** The cursor of the page after the one that ended at `lastSeq`. */
export function nextHistoryCursor(window: HistoryWindow, lastSeq: number, cursors: Cursors, list: string): string {
	const next: HistoryWindow = window.ascending ? { ...window, after: lastSeq } : { ...window, before: lastSeq };
	return cursors.encode(list, `h:${next.ascending ? "a" : "d"}:${next.after ?? ""}:${next.before ?? ""}`);
}
