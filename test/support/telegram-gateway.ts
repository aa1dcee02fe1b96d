/**
 * A gateway wired to the Telegram Bot API double: the double on a loopback port as
 * TELEGRAM_API_ROOT, the gateway on a known port (so PUBLIC_URL can point Telegram's pushes back at
 * it in webhook mode), a first admin, and helpers to register bots and call the REST API.
 */
import type { ServiceSchema } from "moleculer";
import { TelegramDouble, type TelegramDoubleOptions } from "./telegram-double";
import { http, startTestGateway, type HttpResult, type TestGateway, type TestGatewayOptions } from "./harness";
import { freePort } from "./processes";
import type { ServiceName } from "../../lib/config";

export const ADMIN_PASSWORD = "admin-password-for-tests";

export interface TelegramGateway {
	gw: TestGateway;
	telegram: TelegramDouble;
	baseUrl: string;
	adminToken: string;
	/** REST call under /api/v1 with a Bearer token (the admin's unless given). */
	api<T = Record<string, unknown>>(method: string, path: string, body?: unknown, token?: string, headers?: Record<string, string>): Promise<HttpResult<T>>;
	/** Registers a bot with the double and the gateway; returns the gateway's bot and the token. */
	addBot(spec?: { username?: string }): Promise<{ bot: { id: number; telegram_id: number; mode: string; webhook_url: string | null }; token: string }>;
	/** Collects every event the cluster publishes (gateway.events), in arrival order. */
	events: Array<Record<string, unknown>>;
	stop(): Promise<void>;
}

export interface TelegramGatewayOptions {
	/** Webhook mode (PUBLIC_URL set to the gateway) or long polling. */
	mode: "webhook" | "polling";
	double?: TelegramDoubleOptions;
	env?: Record<string, string>;
	nodes?: ServiceName[][];
	brokerOptions?: TestGatewayOptions["brokerOptions"];
}

function eventSpy(sink: Array<Record<string, unknown>>): ServiceSchema {
	return {
		name: "test-event-spy",
		events: {
			"gateway.events"(ctx: { params: { events: Array<Record<string, unknown>> } }) {
				sink.push(...ctx.params.events);
			},
		},
	};
}

export async function startTelegramGateway(options: TelegramGatewayOptions): Promise<TelegramGateway> {
	const telegram = new TelegramDouble({ redeliveryDelayMs: 50, ...options.double });
	const root = await telegram.start();
	const port = await freePort();
	const publicUrl = `http://127.0.0.1:${port}`;
	const events: Array<Record<string, unknown>> = [];
	const gw = await startTestGateway({
		nodes: options.nodes,
		services: [eventSpy(events)],
		brokerOptions: options.brokerOptions,
		env: {
			ADMIN_PASSWORD,
			TELEGRAM_API_ROOT: root,
			PORT: String(port),
			RATE_LIMIT_DEFAULT: "100000",
			...(options.mode === "webhook" ? { PUBLIC_URL: publicUrl } : {}),
			...options.env,
		},
	});
	const baseUrl = gw.baseUrl;
	const login = await gw.broker.call<{ access_token: string }, Record<string, string>>(
		"auth.login",
		{ username: "admin", password: ADMIN_PASSWORD },
		{ meta: { clientIp: "10.9.9.9" } },
	);
	const adminToken = login.access_token;
	const api: TelegramGateway["api"] = (method, path, body, token = adminToken, headers = {}) =>
		http(baseUrl, method, `/api/v1${path}`, { body, headers: { authorization: `Bearer ${token}`, ...headers } });
	return {
		gw,
		telegram,
		baseUrl,
		adminToken,
		api,
		events,
		async addBot(spec = {}) {
			const token = telegram.addBot({ username: spec.username });
			const res = await api<{ id: number; telegram_id: number; mode: string; webhook_url: string | null }>("POST", "/bots", { token });
			if (res.status !== 201) throw new Error(`bot registration failed: ${res.status} ${res.text}`);
			return { bot: res.body, token };
		},
		async stop() {
			await gw.stop();
			await telegram.stop();
		},
	};
}
