import { traceablePath } from "../../services/api/http";
import { REDACTED, redactedTags, redactSecrets } from "../../lib/tracing";

describe("span tags", () => {
	it("replace the values of secret-named keys at any depth and keep the rest", () => {
		const params = {
			username: "ann",
			password: "p",
			new_password: "q",
			credential: "tgw_x",
			headers: { "X-API-Key": "tgw_y", Authorization: "Bearer z", accept: "json" },
			bots: [{ token: "123:abc", name: "b" }],
			webhook: { secret: "s", url: "https://example.com/hook" },
			refresh_token: "r",
			limit: 5,
		};
		expect(redactSecrets(params)).toEqual({
			username: "ann",
			password: REDACTED,
			new_password: REDACTED,
			credential: REDACTED,
			headers: { "X-API-Key": REDACTED, Authorization: REDACTED, accept: "json" },
			bots: [{ token: REDACTED, name: "b" }],
			webhook: { secret: REDACTED, url: "https://example.com/hook" },
			refresh_token: REDACTED,
			limit: 5,
		});
		expect(params.password).toBe("p");
	});

	it("take a URL's credentials and query out of any value (a webhook URL refused for carrying them was in the span)", () => {
		expect(redactSecrets({ url: "http://user:hunter2pass@127.0.0.1:46020/hook?sig=QUERYSECRET123" })).toEqual({ url: `http://${REDACTED}@127.0.0.1:46020/hook?${REDACTED}` });
		expect(redactSecrets(["https://hooks.example.com/in", "https://svc:Pass77@hooks.example.com/in"])).toEqual(["https://hooks.example.com/in", `https://${REDACTED}@hooks.example.com/in`]);
		expect(redactSecrets("a text that mentions :// and user@example.com")).toBe("a text that mentions :// and user@example.com");
	});

	it("cut off nesting too deep to copy, and pass plain values through", () => {
		expect(redactSecrets({ a: { b: { c: { d: { e: { f: { password: "p" } } } } } } })).toEqual({ a: { b: { c: { d: { e: { f: "[too deep]" } } } } } });
		expect(redactSecrets("text")).toBe("text");
		expect(redactSecrets(null)).toBeNull();
	});

	it("tag the params when a call starts and nothing of its response when it ends", () => {
		expect(redactedTags({ params: { password: "p" } })).toEqual({ params: { password: REDACTED } });
		expect(redactedTags({ params: {} }, { access_token: "t" })).toBeUndefined();
		expect(redactedTags({ params: {} }, undefined)).toBeUndefined();
	});

	it("show request paths without their query or a Telegram webhook path", () => {
		expect(traceablePath("/api/v1/chats?api_key=tgw_x&limit=5")).toBe("/api/v1/chats");
		expect(traceablePath(`/api/v1/telegram/webhook/${"ab".repeat(32)}`)).toBe("/api/v1/telegram/webhook/:path");
		expect(traceablePath(undefined)).toBe("");
	});
});
