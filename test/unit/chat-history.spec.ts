import { Cursors } from "../../lib/paging";
import { historyWindow as windowOf, nextHistoryCursor as nextOf, type HistoryWindow } from "../../services/chats/history";

const cursors = new Cursors("a test secret of some length");
const historyWindow = (query: { after_seq?: number; before_seq?: number }, cursor: string | undefined) => windowOf(query, cursor, cursors, "messages:1");
const nextHistoryCursor = (window: HistoryWindow, lastSeq: number) => nextOf(window, lastSeq, cursors, "messages:1");

describe("chat history windows and cursors", () => {
	it("takes the direction and bounds from the query without a cursor", () => {
		expect(historyWindow({}, undefined)).toEqual({ ascending: false });
		expect(historyWindow({ before_seq: 9 }, undefined)).toEqual({ ascending: false, before: 9 });
		expect(historyWindow({ after_seq: 0 }, undefined)).toEqual({ ascending: true, after: 0 });
		expect(historyWindow({ after_seq: 2, before_seq: 5 }, "")).toEqual({ ascending: true, after: 2, before: 5 });
	});

	it("a next cursor alone carries direction and bounds on", () => {
		const up = { ascending: true, after: 2, before: 50 };
		expect(historyWindow({}, nextHistoryCursor(up, 10))).toEqual({ ascending: true, after: 10, before: 50 });
		expect(historyWindow({ before_seq: 3 }, nextHistoryCursor({ ascending: true, after: 0 }, 7))).toEqual({ ascending: true, after: 7 });
		expect(historyWindow({}, nextHistoryCursor({ ascending: false }, 40))).toEqual({ ascending: false, before: 40 });
	});

	it("a cursor of another chat's history, or of another list, is refused; the old unsigned ones too", () => {
		const other = nextOf({ ascending: false }, 40, cursors, "messages:2");
		expect(() => historyWindow({}, other)).toThrow(expect.objectContaining({ type: "VALIDATION_ERROR" }));
		expect(() => historyWindow({}, cursors.encode("chats", "40"))).toThrow(expect.objectContaining({ type: "VALIDATION_ERROR" }));
		expect(() => historyWindow({}, Buffer.from("k:40").toString("base64url"))).toThrow(expect.objectContaining({ type: "VALIDATION_ERROR" }));
		expect(() => historyWindow({}, Buffer.from("h:d::40").toString("base64url"))).toThrow(expect.objectContaining({ type: "VALIDATION_ERROR" }));
	});

	it.each(["nope", cursors.encode("messages:1", "h:x:1:"), cursors.encode("messages:1", "h:a:-1:"), cursors.encode("messages:1", `h:a:${"9".repeat(17)}:`)])(
		"a cursor that is not ours (%s) is a VALIDATION_ERROR naming cursor",
		(cursor) => {
			expect(() => historyWindow({}, cursor)).toThrow(expect.objectContaining({ type: "VALIDATION_ERROR", data: { fields: [expect.objectContaining({ field: "cursor" })] } }));
		},
	);
});
