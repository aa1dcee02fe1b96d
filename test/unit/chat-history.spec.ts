import { historyWindow, nextHistoryCursor } from "../../services/chats/history";

const legacy = (seq: number) => Buffer.from(`k:${seq}`).toString("base64url");

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

	it("reads the cursors given out before (the last seq, direction from the query)", () => {
		expect(historyWindow({}, legacy(40))).toEqual({ ascending: false, before: 40 });
		expect(historyWindow({ after_seq: 0 }, legacy(7))).toEqual({ ascending: true, after: 7 });
	});

	it.each(["nope", Buffer.from("h:x:1:").toString("base64url"), Buffer.from("h:a:-1:").toString("base64url"), Buffer.from(`h:a:${"9".repeat(17)}:`).toString("base64url")])(
		"a cursor that is not ours (%s) is a VALIDATION_ERROR naming cursor",
		(cursor) => {
			expect(() => historyWindow({}, cursor)).toThrow(expect.objectContaining({ type: "VALIDATION_ERROR", data: { fields: [expect.objectContaining({ field: "cursor" })] } }));
		},
	);
});
