/** What in Telegram's webhook the reconciler sets again (services/bots/reconciler.ts). */
import { ALL_UPDATE_KINDS, type WebhookInfo } from "../../lib/telegram/client";
import { webhookDrift } from "../../services/bots/reconciler";

const URL_OURS = "https://gw.example/api/v1/telegram/webhook/abc";
const info = (overrides: Partial<WebhookInfo> = {}): WebhookInfo => ({ url: URL_OURS, pending_update_count: 3, max_connections: 40, allowed_updates: [...ALL_UPDATE_KINDS], ...overrides });

describe("webhookDrift", () => {
	it("nothing when Telegram has what the gateway sets (extra kinds Telegram knows do not matter)", () => {
		expect(webhookDrift(info(), URL_OURS)).toEqual([]);
		expect(webhookDrift(info({ allowed_updates: [...ALL_UPDATE_KINDS, "some_future_kind"] }), URL_OURS)).toEqual([]);
	});

	it("another URL, no URL, kinds missing (a list from an older build, or none), another max_connections", () => {
		expect(webhookDrift(info({ url: "https://elsewhere.example/hook" }), URL_OURS)).toEqual(["url"]);
		expect(webhookDrift(info({ url: "" }), URL_OURS)).toEqual(["url"]);
		expect(webhookDrift(info({ allowed_updates: ALL_UPDATE_KINDS.filter((k) => k !== "guest_message") }), URL_OURS)).toEqual(["allowed_updates"]);
		expect(webhookDrift(info({ allowed_updates: undefined }), URL_OURS)).toEqual(["allowed_updates"]);
		expect(webhookDrift(info({ max_connections: 100 }), URL_OURS)).toEqual(["max_connections"]);
	});
});
