/** The hostile-input generators' own mutations (test/support/hostile.ts), which property tests build on. */
import { withPath } from "../support/hostile";

describe("withPath", () => {
	const entity = { message: { entities: [{ type: "bold", offset: 0, length: 5 }] } };

	it("sets, replaces and deletes a path, without touching the original", () => {
		expect(withPath(entity, ["message", "entities", 0, "length"], -1)).toEqual({ message: { entities: [{ type: "bold", offset: 0, length: -1 }] } });
		expect(withPath(entity, ["message", "entities", 0], undefined)).toEqual({ message: { entities: [] } });
		expect(withPath(entity, ["message", "entities", 0, "type"], undefined)).toEqual({ message: { entities: [{ offset: 0, length: 5 }] } });
		expect(entity.message.entities[0]!.length).toBe(5);
	});

	it("leaves alone a path an earlier mutation did away with: an entity turned into an array has no `length` to set (it threw RangeError)", () => {
		const turned = withPath(entity, ["message", "entities", 0], [1, 2]);
		for (const bad of [-5, 1.5, 2 ** 32, "x", null]) expect(withPath(turned, ["message", "entities", 0, "length"], bad)).toEqual(turned);
		expect(withPath(turned, ["message", "entities", 0, "type"], "bold")).toEqual(turned);
		expect(withPath(withPath(entity, ["message"], "text"), ["message", "entities", 0, "length"], 1)).toEqual({ message: "text" });
	});
});
