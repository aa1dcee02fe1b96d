/**
 * What the gateway answers, for GET /api/openapi.json: a component schema for every shape a route
 * returns, and for every operation the success statuses it really answers with their bodies and
 * headers. The shapes are written from the view functions that build the answers
 * (services/chats/views.ts, services/delivery/views.ts, services/auth/*.ts, services/bots/registry.ts,
 * lib/readiness.ts, ...): each field they set is listed, `required` unless a view leaves it out,
 * `nullable` where it may be null. test/integration/openapi-responses.spec.ts validates real answers
 * against them, failing on any field not declared here.
 *
 * The operations are keyed by the action a route calls (a function alias by "METHOD path"): the
 * routes themselves still come from the gateway's alias table (openapi.ts), so a route added later
 * without an entry here keeps the generic "2XX" answer.
 */
import { PERMISSIONS, ROLES } from "../auth/principal";
import { EVENT_TYPES, SCOPES } from "../delivery/matching";
import type { Schema } from "./param-schema";

const ref = (name: string): Schema => ({ $ref: `#/components/schemas/${name}` });

/** OpenAPI 3.0's null: `nullable`, and `null` among the values of an enum (which otherwise refuses it). */
function nullable(schema: Schema): Schema {
	return { ...schema, nullable: true, ...(Array.isArray(schema.enum) ? { enum: [...(schema.enum as unknown[]), null] } : {}) };
}

const described = (schema: Schema, description: string): Schema => ({ ...schema, description });

/** An object whose every listed field is always present (null or not), unless named in `optional`. */
function object(properties: Record<string, Schema>, optional: string[] = [], extra: Schema = {}): Schema {
	return { type: "object", required: Object.keys(properties).filter((name) => !optional.includes(name)), properties, ...extra };
}

const ID: Schema = { type: "integer", minimum: 1 };
const INTEGER: Schema = { type: "integer" };
const COUNT: Schema = { type: "integer", minimum: 0 };
const STRING: Schema = { type: "string" };
const BOOLEAN: Schema = { type: "boolean" };
/** lib/time.ts's iso(): `2026-12-07T16:00:00.000Z`. */
const TIME: Schema = { type: "string", format: "date-time" };
/** A JSON value the gateway passes on as Telegram (or a receiver) wrote it. */
const FREE_OBJECT: Schema = { type: "object", additionalProperties: true };

const STAMPS = { created_at: TIME, updated_at: TIME };

const DELIVERY_STATUSES = ["pending", "in_flight", "succeeded", "failed", "dead"];
const CHECK_STATE: Schema = { type: "string", enum: ["up", "down", "disabled"] };
const CHECKS = ["db", "transporter", "cacher", "state"];
/** lib/readiness.ts (starting, shutting_down) and lib/ops-server.ts (before the broker started). */
const NOT_READY_REASONS = ["starting", "shutting_down", "migrating", "schema_behind", "schema_ahead", "joining"];

const page = (item: string): Schema =>
	object(
		{ data: { type: "array", items: ref(item) }, next_cursor: nullable(described(STRING, "Pass as `cursor` (with the same filters) for the next page; null on the last page.")) },
		[],
		{ description: `A page of ${item} items.` },
	);

const FAILURE_DETAILS = object(
	{
		telegram_error_code: INTEGER,
		may_have_been_delivered: BOOLEAN,
		migrate_to_chat_id: described(INTEGER, "Telegram's id of the supergroup the group became."),
		new_chat_id: nullable(described(INTEGER, "The gateway's chat of that supergroup; null while the bot has not seen it.")),
		bot_token_refused: BOOLEAN,
	},
	["telegram_error_code", "may_have_been_delivered", "migrate_to_chat_id", "new_chat_id", "bot_token_refused"],
	{ description: "What a program needs of the failure, as far as each applies (docs/rest.md, \"Sending\")." },
);

/**
 * A message (services/chats/views.ts, messageView), either direction. One schema rather than a
 * oneOf per direction: the incoming branch's `status` would be of type `null` alone, and
 * openapi-fetch's Readable<> drops properties of that type, so `message.status` would not compile.
 */
const MESSAGE_FIELDS: Record<string, Schema> = {
	id: ID,
	seq: nullable(described(INTEGER, "The event's place in the gateway's one sequence; null while an outgoing message is queued.")),
	chat_id: ID,
	bot_id: ID,
	telegram_message_id: nullable(described(INTEGER, "Telegram's id of the message; null until Telegram accepted an outgoing one.")),
	direction: { type: "string", enum: ["incoming", "outgoing"] },
	type: described(STRING, "`text`, the media field Telegram set (`photo`, `video`, `document`, ...), `service`, or `other`."),
	text: nullable(STRING),
	caption: nullable(STRING),
	entities: nullable(described({ type: "array", items: FREE_OBJECT }, "Telegram's MessageEntity objects, as Telegram sent them.")),
	from: nullable(
		object(
			{ telegram_id: INTEGER, username: nullable(STRING), first_name: nullable(STRING), last_name: nullable(STRING), is_bot: BOOLEAN },
			[],
			{ description: "The sender (the sender_chat for messages sent on behalf of a chat); null when Telegram names none." },
		),
	),
	reply_to_message_id: nullable(described(INTEGER, "Telegram's id of the message replied to.")),
	thread_id: nullable(described(INTEGER, "The forum topic (Telegram's message_thread_id).")),
	media_group_id: nullable(described(STRING, "Telegram's album id, shared by the photos and videos of one album.")),
	media: nullable(described(FREE_OBJECT, "The media object Telegram sent (for `service` messages: `{service, value}`).")),
	date: nullable(described(TIME, "When Telegram dated the message; null while an outgoing message is queued.")),
	edit_date: nullable(TIME),
	status: nullable(described({ type: "string", enum: ["queued", "sent", "failed"] }, "Outgoing messages: queued, sent or failed; null for incoming ones.")),
	error: nullable(described(STRING, "Failed outgoing messages only: why, in words.")),
	error_details: { ...FAILURE_DETAILS, description: `Failed outgoing messages only. ${String(FAILURE_DETAILS.description)}` },
};

const USER_FIELDS = {
	id: ID,
	username: STRING,
	email: nullable({ type: "string", format: "email" }),
	roles: { type: "array", items: { type: "string", enum: [...ROLES] } },
	is_active: BOOLEAN,
	last_login_at: nullable(TIME),
	...STAMPS,
};

const TOKEN_PAIR_FIELDS = {
	access_token: described(STRING, "A JWT; send it as `Authorization: Bearer <access_token>`."),
	refresh_token: described(STRING, "Good for one POST /auth/refresh."),
	token_type: { type: "string", enum: ["Bearer"] },
	expires_in: described({ type: "integer", minimum: 1 }, "Seconds the access token lives (JWT_ACCESS_TTL)."),
};

const PERMISSION_LIST: Schema = { type: "array", items: { type: "string", enum: [...PERMISSIONS] } };

const API_KEY_FIELDS = {
	id: ID,
	user_id: described(ID, "The user the key acts for."),
	name: STRING,
	prefix: described({ type: "string", pattern: "^tgw_[0-9a-f]{16}$" }, "The key's public start, to recognise it."),
	scopes: nullable(described(PERMISSION_LIST, "The permissions the key is narrowed to; null: all of its user's.")),
	rate_limit: nullable(described({ type: "integer", minimum: 1 }, "Requests per second; null: its user's limit.")),
	expires_at: nullable(TIME),
	revoked_at: nullable(TIME),
	last_used_at: nullable(TIME),
	...STAMPS,
};

const WEBHOOK_FIELDS = {
	id: ID,
	url: { type: "string", format: "uri" },
	scope: { type: "string", enum: [...SCOPES] },
	bot_id: nullable(described(ID, "Scope `bot` only.")),
	chat_ids: nullable(described({ type: "array", items: ID }, "Scopes `chat` and `reply` only.")),
	reply_to_message_id: nullable(described(INTEGER, "Scope `reply` only.")),
	event_types: nullable(described({ type: "array", items: { type: "string", enum: [...EVENT_TYPES] } }, "null: every event type.")),
	ordered: BOOLEAN,
	max_concurrency: { type: "integer", minimum: 1 },
	is_active: BOOLEAN,
	disabled_reason: nullable(described(STRING, "Why the gateway or its owner switched it off.")),
	owner: object({ user_id: nullable(ID), api_key_id: nullable(ID) }, [], { description: "Who owns it: a user, or the API key that created it." }),
	previous_secret_expires_at: nullable(described(TIME, "Until when the secret replaced by the last rotation still signs.")),
	...STAMPS,
};

const BREAKER = object(
	{ state: { type: "string", enum: ["closed", "open", "half_open"] }, open_until: nullable(TIME) },
	[],
	{ description: "The endpoint's circuit breaker (open: nothing is sent until open_until, then one probe)." },
);

const WEBHOOK_SECRET: Schema = described({ type: "string", pattern: "^whsec_[A-Za-z0-9+/]+={0,2}$" }, "The signing secret, shown this once.");

/** Every shape the API answers, for components.schemas (beside Error, FieldProblem and Page). */
export function responseSchemas(): Record<string, Schema> {
	return {
		User: object(USER_FIELDS),
		UserPage: page("User"),
		TokenPair: object(TOKEN_PAIR_FIELDS, [], { description: "POST /auth/refresh: a new pair; the refresh token presented is spent." }),
		LoginResult: object({ ...TOKEN_PAIR_FIELDS, user: ref("User") }),
		UserPrincipal: object({
			type: { type: "string", enum: ["user"] },
			id: ID,
			username: STRING,
			roles: { type: "array", items: { type: "string", enum: [...ROLES] } },
			permissions: PERMISSION_LIST,
		}),
		ApiKeyPrincipal: object({
			type: { type: "string", enum: ["api_key"] },
			id: described(ID, "The key's id."),
			name: STRING,
			user_id: described(ID, "The key's user."),
			roles: described({ type: "array", items: { type: "string", enum: [...ROLES] } }, "Its user's roles."),
			permissions: described(PERMISSION_LIST, "Its user's permissions, narrowed to the key's scopes."),
			scopes: nullable(PERMISSION_LIST),
			rate_limit: described({ type: "integer", minimum: 1 }, "Requests per second (the key's, else its user's)."),
		}),
		Principal: {
			description: "Who is calling (GET /auth/me): a user (access token) or an API key.",
			oneOf: [ref("UserPrincipal"), ref("ApiKeyPrincipal")],
			discriminator: { propertyName: "type", mapping: { user: "#/components/schemas/UserPrincipal", api_key: "#/components/schemas/ApiKeyPrincipal" } },
		},
		ApiKey: object(API_KEY_FIELDS),
		ApiKeyPage: page("ApiKey"),
		ApiKeyWithSecret: object(
			{ ...API_KEY_FIELDS, key: described({ type: "string", pattern: "^tgw_[0-9a-f]{16}[A-Za-z0-9_-]{43}$" }, "The key itself, shown this once (creation and rotation).") },
			[],
			{ description: "An API key with its secret: POST /apikeys and POST /apikeys/{id}/rotate." },
		),
		Bot: object({
			id: ID,
			username: STRING,
			telegram_id: ID,
			display_name: nullable(STRING),
			description: nullable(STRING),
			mode: { type: "string", enum: ["webhook", "polling"] },
			webhook_url: nullable(described({ type: "string", format: "uri" }, "Where Telegram pushes the bot's updates; null in polling mode and for a deleted bot.")),
			is_active: described(BOOLEAN, "false once deleted (its chats and history stay readable)."),
			last_error: nullable(described(STRING, "What is wrong with the bot on Telegram's side right now.")),
			...STAMPS,
		}),
		BotPage: page("Bot"),
		Chat: object({
			id: ID,
			bot_id: ID,
			telegram_id: INTEGER,
			business_connection_id: nullable(described(STRING, "The business account's connection for its chats; null for the bot's own.")),
			type: described(STRING, "Telegram's chat type: `private`, `group`, `supergroup` or `channel`."),
			title: nullable(STRING),
			username: nullable(STRING),
			first_name: nullable(STRING),
			last_name: nullable(STRING),
			is_forum: BOOLEAN,
			migrated_to_chat_id: nullable(described(INTEGER, "Telegram's id of the supergroup this group became.")),
			...STAMPS,
		}),
		ChatPage: page("Chat"),
		Message: object(MESSAGE_FIELDS, ["error", "error_details"], {
			description: "A stored message: incoming (from Telegram) or outgoing (sent through the gateway). `error` and `error_details` are there when an outgoing message failed.",
		}),
		MessagePage: page("Message"),
		ChatPermission: object(
			{
				id: ID,
				chat_id: ID,
				user_id: nullable(ID),
				api_key_id: nullable(ID),
				can_read: BOOLEAN,
				can_send: BOOLEAN,
				can_manage: BOOLEAN,
				granted_by_user_id: nullable(ID),
				...STAMPS,
			},
			[],
			{ description: "A grant on a chat, to a user or to an API key (exactly one of user_id and api_key_id is set)." },
		),
		ChatPermissionPage: page("ChatPermission"),
		Webhook: object(WEBHOOK_FIELDS),
		WebhookDetail: object({ ...WEBHOOK_FIELDS, breaker: BREAKER }, [], { description: "GET /webhooks/{id}: the webhook with its endpoint's breaker." }),
		WebhookWithSecret: object({ ...WEBHOOK_FIELDS, secret: WEBHOOK_SECRET }, [], { description: "A webhook with its signing secret: POST /webhooks and POST /webhooks/{id}/rotate-secret." }),
		WebhookPage: page("Webhook"),
		WebhookAttempt: object({
			attempt: { type: "integer", minimum: 1 },
			at: TIME,
			status_code: nullable(described(INTEGER, "The receiver's HTTP status; null when none came.")),
			duration_ms: COUNT,
			error: nullable(STRING),
			response_excerpt: nullable(described(STRING, "The start of the receiver's answer (1 KB at most).")),
		}),
		WebhookDelivery: object({
			id: ID,
			webhook_id: ID,
			event_id: described({ type: "string", pattern: "^evt_[0-9]+$" }, "The webhook-id header of every attempt."),
			event_seq: INTEGER,
			event: { type: "string", enum: [...EVENT_TYPES] },
			chat_id: nullable(ID),
			status: { type: "string", enum: DELIVERY_STATUSES },
			attempts: COUNT,
			next_attempt_at: nullable(described(TIME, "Pending and failed deliveries only.")),
			last_status_code: nullable(INTEGER),
			last_error: nullable(STRING),
			delivered_at: nullable(TIME),
			...STAMPS,
			log: { type: "array", items: ref("WebhookAttempt"), description: "Every attempt so far, oldest first." },
		}),
		WebhookDeliveryPage: page("WebhookDelivery"),
		WebhookTestResult: object(
			{
				ok: described(BOOLEAN, "The receiver answered 2xx."),
				status_code: nullable(INTEGER),
				duration_ms: COUNT,
				error: nullable(STRING),
				response_excerpt: nullable(STRING),
			},
			[],
			{ description: "The outcome of one signed `ping`, sent now outside the queue." },
		),
		ReplayResult: object(
			{
				scheduled: described(COUNT, "Deliveries created."),
				complete: described(BOOLEAN, "false: a cap stopped the replay; replay again with since_seq = last_seq."),
				last_seq: nullable(described(INTEGER, "The highest seq scheduled or read; null when nothing was.")),
			},
			[],
		),
		TelegramPushResult: object({ ok: { type: "boolean", enum: [true] }, duplicate: { type: "boolean", enum: [true] } }, ["duplicate"], {
			description: "The update is stored (`duplicate`: it was already).",
		}),
		Health: object({ status: { type: "string", enum: ["ok"] }, node: described(STRING, "The node's id."), uptime_seconds: COUNT }),
		Readiness: object({ status: { type: "string", enum: ["ok"] }, checks: object(Object.fromEntries(CHECKS.map((name) => [name, CHECK_STATE]))) }),
		NotReady: object(
			{
				status: { type: "string", enum: ["unavailable"] },
				reason: { type: "string", enum: NOT_READY_REASONS, description: "Why the node is not serving, besides a check that is down." },
				checks: object(Object.fromEntries(CHECKS.map((name) => [name, CHECK_STATE])), CHECKS, { description: "What was checked (before the node started, only what is known)." }),
			},
			["reason", "checks"],
		),
		OpenApiDocument: object(
			{ openapi: { type: "string", pattern: "^3\\.0\\.[0-9]+$" }, info: FREE_OBJECT, paths: FREE_OBJECT, components: FREE_OBJECT },
			[],
			{ description: "This document." },
		),
	};
}

/** A success answer of an operation. */
export interface SuccessSpec {
	status: number;
	/** components.schemas name of the JSON body; none: no body (204). */
	schema?: string;
	/** The body's media type and schema when it is not a JSON component (GET /metrics). */
	content?: Record<string, Schema>;
	/** The answer carries Location (a path under /api/v1). */
	location?: boolean;
	description: string;
}

const created = (schema: string, what: string): SuccessSpec => ({ status: 201, schema, location: true, description: `Created: the ${what}; Location is its path.` });
const ok = (schema: string, description: string): SuccessSpec => ({ status: 200, schema, description });
const NO_CONTENT: SuccessSpec = { status: 204, description: "Done; no body." };

/** The success answers of each operation, by the action its route calls (a function alias by "METHOD path"). */
export const SUCCESS: Readonly<Record<string, SuccessSpec[]>> = {
	"auth.login": [ok("LoginResult", "Logged in: a token pair and the user.")],
	"auth.refresh": [ok("TokenPair", "A new token pair; the refresh token presented is spent.")],
	"auth.logout": [NO_CONTENT],
	"auth.me": [ok("Principal", "The caller.")],
	"auth.createUser": [created("User", "user")],
	"auth.listUsers": [ok("UserPage", "A page of users.")],
	"auth.getUser": [ok("User", "The user.")],
	"auth.updateUser": [ok("User", "The user as changed.")],
	"auth.deleteUser": [NO_CONTENT],
	"auth.createApiKey": [created("ApiKeyWithSecret", "key, with its secret `key` shown this once")],
	"auth.listApiKeys": [ok("ApiKeyPage", "A page of API keys.")],
	"auth.getApiKey": [ok("ApiKey", "The key (never its secret).")],
	"auth.revokeApiKey": [NO_CONTENT],
	"auth.rotateApiKey": [ok("ApiKeyWithSecret", "The key with its new secret `key`, shown this once; the old secret stops working.")],
	"auth.listChatPermissions": [ok("ChatPermissionPage", "A page of the chat's grants.")],
	"auth.putChatPermission": [
		ok("ChatPermission", "An existing grant of that user or key, replaced."),
		{ status: 201, schema: "ChatPermission", location: true, description: "A new grant; Location is the chat's grant list (/api/v1/chats/{id}/permissions)." },
	],
	"auth.deleteChatPermission": [NO_CONTENT],
	"bots.create": [created("Bot", "bot (a deleted bot registered again keeps its id)")],
	"bots.list": [ok("BotPage", "A page of bots.")],
	"bots.get": [ok("Bot", "The bot.")],
	"bots.update": [ok("Bot", "The bot as changed.")],
	"bots.remove": [NO_CONTENT],
	"chats.list": [ok("ChatPage", "A page of the chats the caller may read.")],
	"chats.get": [ok("Chat", "The chat.")],
	"chats.messages": [ok("MessagePage", "A page of the chat's history.")],
	"chats.getMessage": [ok("Message", "The message, with its status.")],
	"chats.send": [
		{ status: 201, schema: "Message", location: true, description: "Sent: Telegram accepted the message (`status: sent`). Location is GET /api/v1/messages/{id}." },
		{ status: 202, schema: "Message", location: true, description: "Queued: the message still waits for Telegram's flood limits (`status: queued`); follow it at Location (GET /api/v1/messages/{id})." },
	],
	"delivery.createWebhook": [created("WebhookWithSecret", "webhook, with its signing `secret` shown this once")],
	"delivery.listWebhooks": [ok("WebhookPage", "A page of webhooks.")],
	"delivery.getWebhook": [ok("WebhookDetail", "The webhook and its breaker.")],
	"delivery.replaceWebhook": [ok("Webhook", "The webhook as replaced.")],
	"delivery.updateWebhook": [ok("Webhook", "The webhook as changed.")],
	"delivery.deleteWebhook": [NO_CONTENT],
	"delivery.rotateWebhookSecret": [ok("WebhookWithSecret", "The webhook with its new `secret`, shown this once; the old one signs too for 24 h.")],
	"delivery.testWebhook": [ok("WebhookTestResult", "The ping's outcome (a receiver's failure is an outcome too, `ok: false`).")],
	"delivery.listDeliveries": [ok("WebhookDeliveryPage", "A page of the delivery log, newest first.")],
	"delivery.retryDelivery": [{ status: 202, schema: "WebhookDelivery", description: "Scheduled again now; the delivery with its log so far." }],
	"delivery.replayWebhook": [{ status: 202, schema: "ReplayResult", description: "Deliveries scheduled; they go out in the background." }],
	"api.telegramPush": [ok("TelegramPushResult", "The update is durably stored.")],
	"api.health": [ok("Health", "The process lives.")],
	"api.ready": [ok("Readiness", "Ready: every check is up.")],
	"api.openapi": [ok("OpenApiDocument", "This document.")],
	"GET /metrics": [
		{
			status: 200,
			description: "Prometheus' text exposition format (version 0.0.4).",
			content: { "text/plain; version=0.0.4": { schema: { type: "string" } } },
		},
	],
};

/**
 * An operation's success answers as SUCCESS gives them (status by status, with their bodies and
 * Location, beside `headers`); a route SUCCESS does not know gets one generic "2XX".
 */
export function successResponses(specs: SuccessSpec[] | undefined, method: string, paged: boolean, headers: Record<string, Schema>): Record<string, Schema> {
	if (!specs) {
		return {
			"2XX": {
				description: "Success: 200, or 201 Created (with Location) for what a POST creates, 202 Accepted for work still queued, 204 when there is nothing to return.",
				headers,
				...(method === "delete" ? {} : { content: { "application/json": { schema: paged ? { $ref: "#/components/schemas/Page" } : {} } } }),
			},
		};
	}
	const responses: Record<string, Schema> = {};
	for (const spec of specs) {
		const content = spec.content ?? (spec.schema ? { "application/json": { schema: { $ref: `#/components/schemas/${spec.schema}` } } } : undefined);
		responses[String(spec.status)] = {
			description: spec.description,
			headers: { ...headers, ...(spec.location ? { Location: { $ref: "#/components/headers/Location" } } : {}) },
			...(content ? { content } : {}),
		};
	}
	return responses;
}

/**
 * Answers other than success and the error format that an operation gives: /ready's 503 is its
 * report, not an Error; GET /metrics answers 404 when METRICS_ENABLED=false.
 */
export const OTHER_ANSWERS: Readonly<Record<string, Record<string, Schema>>> = {
	"api.ready": {
		"503": { description: "Not ready: a check is down, or the node is starting or shutting down.", content: { "application/json": { schema: ref("NotReady") } } },
	},
	"GET /metrics": { "404": { $ref: "#/components/responses/Error404" } },
};

/**
 * The operations on the open root route (probes, metrics, this document) take no parameters: no
 * 400, 413 or 415, and no 429. Their errors are these.
 */
export const PLAIN_ROUTE_ERRORS = ["500", "503"];

/**
 * What a request body needs beyond its fields, where the action checks it in its handler (a rule
 * fastest-validator cannot say): exactly one of two fields.
 */
const EXACTLY_ONE: Readonly<Record<string, { fields: [string, string]; description: string }>> = {
	"auth.putChatPermission": {
		fields: ["user_id", "api_key_id"],
		description: "Give exactly one of `user_id` and `api_key_id` (both, or neither, is a 400 naming both). Flags left out are false.",
	},
	"delivery.replayWebhook": {
		fields: ["since", "since_seq"],
		description: "Give exactly one of `since` (an ISO 8601 date, or date and time with its offset) and `since_seq` (both, or neither, is a 400 naming both).",
	},
};

/**
 * The action's body schema with the rule EXACTLY_ONE gives it, as a oneOf of the two fields (each
 * branch typed, so that generated clients require one of them); null when the action has none.
 */
export function constrainedBody(action: string | null, body: Schema): Schema | null {
	const rule = action ? EXACTLY_ONE[action] : undefined;
	const properties = body.properties as Record<string, Schema> | undefined;
	if (!rule || !properties || !rule.fields.every((field) => properties[field])) return null;
	const branch = (field: string): Schema => ({ type: "object", required: [field], properties: { [field]: properties[field] } });
	return { ...body, description: rule.description, oneOf: rule.fields.map(branch) };
}
