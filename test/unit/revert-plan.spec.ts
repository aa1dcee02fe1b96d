/** lib/db/migrator.ts revertPlan: what `migrate down` reverts, printed before it does. */
import { revertPlan } from "../../lib/db/migrator";

const executed = ["0001-a", "0002-b", "0003-c", "0004-d"];

describe("revertPlan", () => {
	it("is the newest one by default, the newest n with step", () => {
		expect(revertPlan(executed, {})).toEqual(["0004-d"]);
		expect(revertPlan(executed, { step: 2 })).toEqual(["0004-d", "0003-c"]);
		expect(revertPlan(executed, { step: 9 })).toEqual(["0004-d", "0003-c", "0002-b", "0001-a"]);
	});

	it("with to, reverts the migrations after it and the named one itself (umzug's convention)", () => {
		expect(revertPlan(executed, { to: "0002-b" })).toEqual(["0004-d", "0003-c", "0002-b"]);
		expect(revertPlan(executed, { to: "0004-d" })).toEqual(["0004-d"]);
		expect(revertPlan(executed, { to: 0 })).toEqual(["0004-d", "0003-c", "0002-b", "0001-a"]);
	});

	it("is null when to names no applied migration", () => {
		expect(revertPlan(executed, { to: "0005-e" })).toBeNull();
		expect(revertPlan([], { to: "0001-a" })).toBeNull();
	});
});
