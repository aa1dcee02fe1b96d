/**
 * What a Telegram message carries besides its text: its `type` and the `media` the gateway stores for
 * it (see MessageInfo in ./types.ts), plus the small defensive readers normalize.ts shares.
 *
 * Everything here is pure and never throws for JSON input: a field whose value has the wrong shape is
 * treated as absent, and only own properties are read, so a key such as `__proto__` or `constructor`
 * in the JSON is plain data and never reaches the prototype chain.
 */

export type JsonObject = Record<string, unknown>;

/** A JSON object (not null, not an array). */
export function isObject(value: unknown): value is JsonObject {
	return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** obj[key] if obj has it as its own property; inherited members (constructor, toString, ...) never count. */
export function own(obj: JsonObject, key: string): unknown {
	return Object.prototype.hasOwnProperty.call(obj, key) ? obj[key] : undefined;
}

/** A Telegram id or counter: an integer JavaScript (and a BIGINT column) holds exactly. */
export function isInt(value: unknown): value is number {
	return typeof value === "number" && Number.isSafeInteger(value);
}

export function intOrNull(value: unknown): number | null {
	return isInt(value) ? value : null;
}

export function numberOrNull(value: unknown): number | null {
	return typeof value === "number" && Number.isFinite(value) ? value : null;
}

/** 9999-12-31T23:59:59Z: the last second a DATETIME column (MySQL) and a JavaScript Date both hold. */
const MAX_UNIX_SECONDS = 253_402_300_799;

/** A Telegram time (unix seconds) a Date and a DATETIME column can hold; null for anything else. */
export function unixTimeOrNull(value: unknown): number | null {
	return typeof value === "number" && Number.isFinite(value) && value >= 0 && value <= MAX_UNIX_SECONDS ? value : null;
}

/** At most `max` characters (code points, as MySQL's utf8mb4 VARCHAR counts them), never half a surrogate pair. */
export function truncate(value: string, max: number): string {
	if (value.length <= max) return value;
	let out = "";
	let count = 0;
	for (const ch of value) {
		if (count === max) break;
		out += ch;
		count++;
	}
	return out;
}

/** A string field, cut to its column size when one is given; null when absent or not a string. */
export function stringOrNull(value: unknown, max?: number): string | null {
	if (typeof value !== "string") return null;
	return max === undefined ? value : truncate(value, max);
}

/**
 * Content fields, in priority order: the first one present names the message's type (= the field name).
 * - `animation` comes before `document`: Telegram sets both for an animation (GIF / silent MP4).
 * - `venue` comes before `location`: Telegram sets both for a venue.
 * - `live_photo` comes before `photo`: Telegram sets `photo` too, for clients that predate live photos.
 * - Real messages carry one content field; fixtures that carry several (telegrambots_multi_kind_update:
 *   text + audio + voice + document) get the first in this order (here: voice).
 * - `user_shared` is the pre-7.0 form of `users_shared`; `rich_message` is a newer kind seen in nutgram.
 * Payment, sharing, passport, web-app and giveaway fields are typed by name rather than as "service":
 * consumers want to tell them apart and their objects are the message's content.
 */
const CONTENT_FIELDS: readonly string[] = [
	"animation",
	"live_photo",
	"photo",
	"video",
	"video_note",
	"voice",
	"audio",
	"document",
	"sticker",
	"paid_media",
	"story",
	"venue",
	"location",
	"contact",
	"poll",
	"dice",
	"game",
	"invoice",
	"successful_payment",
	"refunded_payment",
	"passport_data",
	"web_app_data",
	"users_shared",
	"user_shared",
	"chat_shared",
	"giveaway",
	"giveaway_winners",
	"giveaway_completed",
	"giveaway_created",
	"checklist",
	"rich_message",
];

/** Content fields whose value must be a file object (photo: an array of sizes); any other value counts as absent. */
const FILE_FIELDS: ReadonlySet<string> = new Set(["animation", "video", "video_note", "voice", "audio", "document", "sticker"]);

/**
 * Service fields: a message carrying one is type "service" with media `{ service: <field>, value }`.
 * Bot API service messages (chat membership and settings, migration, pins, forum topics, video chats,
 * boosts, backgrounds, checklists, paid/direct-message prices, ownership, gifts, suggested posts), the
 * pre-6.0 `voice_chat_*` names, and newer ones from the corpus (connected_website, community_chat_*,
 * managed_bot_created, poll_option_added/deleted).
 */
const SERVICE_FIELDS: readonly string[] = [
	"new_chat_members",
	"left_chat_member",
	"new_chat_title",
	"new_chat_photo",
	"delete_chat_photo",
	"group_chat_created",
	"supergroup_chat_created",
	"channel_chat_created",
	"message_auto_delete_timer_changed",
	"migrate_to_chat_id",
	"migrate_from_chat_id",
	"pinned_message",
	"forum_topic_created",
	"forum_topic_edited",
	"forum_topic_closed",
	"forum_topic_reopened",
	"general_forum_topic_hidden",
	"general_forum_topic_unhidden",
	"video_chat_scheduled",
	"video_chat_started",
	"video_chat_ended",
	"video_chat_participants_invited",
	"voice_chat_scheduled",
	"voice_chat_started",
	"voice_chat_ended",
	"voice_chat_participants_invited",
	"write_access_allowed",
	"proximity_alert_triggered",
	"boost_added",
	"chat_background_set",
	"checklist_tasks_done",
	"checklist_tasks_added",
	"direct_message_price_changed",
	"paid_message_price_changed",
	"chat_owner_left",
	"chat_owner_changed",
	"connected_website",
	"community_chat_added",
	"community_chat_removed",
	"managed_bot_created",
	"poll_option_added",
	"poll_option_deleted",
	"gift",
	"unique_gift",
	"gift_upgrade_sent",
	"suggested_post_approved",
	"suggested_post_approval_failed",
	"suggested_post_declined",
	"suggested_post_paid",
	"suggested_post_refunded",
];

/** The largest size (by width * height; the last one when none has both), plus every size. */
function photoMedia(value: unknown): JsonObject | null {
	if (!Array.isArray(value)) return null;
	const sizes = value.filter(isObject);
	if (sizes.length === 0) return null;
	let best = sizes[sizes.length - 1];
	let bestArea = -1;
	for (const size of sizes) {
		const width = own(size, "width");
		const height = own(size, "height");
		if (typeof width !== "number" || typeof height !== "number") continue;
		const area = width * height;
		if (area >= bestArea) {
			best = size;
			bestArea = area;
		}
	}
	return {
		kind: "photo",
		file_id: stringOrNull(own(best, "file_id")),
		file_unique_id: stringOrNull(own(best, "file_unique_id")),
		width: numberOrNull(own(best, "width")),
		height: numberOrNull(own(best, "height")),
		file_size: numberOrNull(own(best, "file_size")),
		sizes,
	};
}

/** The media for one content field, or null when the field is absent (or unusable) in this message. */
function contentMedia(field: string, value: unknown): JsonObject | null {
	if (value === undefined || value === null) return null;
	if (field === "photo") return photoMedia(value);
	// `kind` last: a field of the object itself must not overwrite it.
	if (isObject(value)) return { ...value, kind: field };
	return FILE_FIELDS.has(field) ? null : { kind: field, value };
}

/** The message's type and media (see MessageInfo): content field, else service field, else text, else "other". */
export function messageContent(message: JsonObject): { type: string; media: JsonObject | null } {
	for (const field of CONTENT_FIELDS) {
		const media = contentMedia(field, own(message, field));
		if (media) return { type: field, media };
	}
	for (const field of SERVICE_FIELDS) {
		const value = own(message, field);
		if (value !== undefined && value !== null) return { type: "service", media: { service: field, value } };
	}
	if (typeof own(message, "text") === "string") return { type: "text", media: null };
	return { type: "other", media: null };
}
