import { usableBot } from "../../services/bots/registry";

describe("usableBot: Telegram's getMe answer, read rather than trusted", () => {
	it("keeps a bot with a numeric id and a first_name, and only the fields registration uses", () => {
		expect(usableBot({ id: 42, is_bot: true, first_name: "Shop", username: "shop_bot", can_join_groups: true })).toEqual({ id: 42, is_bot: true, first_name: "Shop", username: "shop_bot" });
		expect(usableBot({ id: 42, is_bot: true, first_name: "Shop", username: 7 })).toEqual({ id: 42, is_bot: true, first_name: "Shop" });
	});

	it.each([
		["null", null],
		["a string", "bot"],
		["an empty object", {}],
		["an id without first_name", { id: 123 }],
		["an id that is a string", { id: "123", first_name: "A" }],
		["an id past 2^53", { id: 2 ** 53, first_name: "A" }],
		["an empty first_name", { id: 1, first_name: "" }],
	])("refuses %s", (_name, answer) => {
		expect(usableBot(answer)).toBeNull();
	});
});
