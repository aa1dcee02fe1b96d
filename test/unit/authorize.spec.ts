/** lib/middlewares/authorize.ts: the permission an action declares, checked where it runs; the refusal says why. */
import type { ActionHandler, ActionSchema, Context } from "moleculer";
import { AuthorizeMiddleware } from "../../lib/middlewares/authorize";
import type { Principal } from "../../services/auth/principal";

const guarded = AuthorizeMiddleware.localAction((async () => "ran") as unknown as ActionHandler, { permission: "bots:read" } as unknown as ActionSchema);
const call = (principal?: Partial<Principal>) => guarded({ meta: { principal } } as unknown as Context) as Promise<unknown>;
const user: Partial<Principal> = { type: "user", id: 1, permissions: ["bots:read"], is_admin: false, scopes: null };

describe("AuthorizeMiddleware", () => {
	it("runs the action for a principal holding the permission; 401 without a principal", async () => {
		await expect(call(user)).resolves.toBe("ran");
		await expect(call(undefined)).rejects.toMatchObject({ type: "UNAUTHORIZED" });
	});

	it("blames a key's scopes only when they leave the permission out; a key whose owner lost it is refused for the owner", async () => {
		await expect(call({ ...user, type: "api_key", scopes: ["chats:read"], permissions: [] })).rejects.toMatchObject({ type: "FORBIDDEN", message: "This API key's scopes do not include bots:read" });
		// Scoped to bots:read, but its user was demoted to a role without it.
		await expect(call({ ...user, type: "api_key", scopes: ["bots:read"], permissions: [] })).rejects.toMatchObject({ type: "FORBIDDEN", message: "Missing permission bots:read" });
		await expect(call({ ...user, permissions: [] })).rejects.toMatchObject({ type: "FORBIDDEN", message: "Missing permission bots:read" });
	});
});
