/**
 * normalizeUpdate against the shared corpus of real Telegram updates (read from ../shared at test time,
 * never copied here) and against hand-made edge cases: message shapes, chats of the other kinds,
 * malformed and hostile input, and the NormalizeError cases the receiver answers with 400.
 */
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { NormalizeError, normalizeUpdate, readUpdate } from "../../services/ingest/normalize";
import type { MessageInfo, NormalizedUpdate, UpdateItem } from "../../services/ingest/types";

const CORPUS_DIR = join(__dirname, "..", "..", "..", "shared", "telegram-updates");
const MANIFEST = JSON.parse(readFileSync(join(CORPUS_DIR, "MANIFEST.json"), "utf8")) as Record<string, { kinds: string[] }>;
const CORPUS_FILES = readdirSync(CORPUS_DIR)
	.filter((name) => name !== "README.md" && name !== "MANIFEST.json")
	.sort();
const MESSAGE_KINDS = ["message", "edited_message", "channel_post", "edited_channel_post", "business_message", "edited_business_message"];

function load(name: string): unknown {
	return JSON.parse(readFileSync(join(CORPUS_DIR, name), "utf8"));
}

function normalizeFile(name: string): NormalizedUpdate {
	return normalizeUpdate(load(name));
}

type MessageItem = Extract<UpdateItem, { message: MessageInfo }>;
type RawItem = Exclude<UpdateItem, MessageItem>;

function asMessage(item: UpdateItem | undefined): MessageItem {
	if (!item || item.message === undefined) throw new Error(`expected a message item, got ${JSON.stringify(item)}`);
	return item;
}

function asRaw(item: UpdateItem | undefined): RawItem {
	if (!item || item.message !== undefined) throw new Error(`expected a raw item, got ${JSON.stringify(item)}`);
	return item;
}

/** The one message of a single-kind update. */
function messageOf(update: unknown): MessageItem {
	const result = normalizeUpdate(update);
	expect(result.items).toHaveLength(1);
	return asMessage(result.items[0]);
}

const CHAT = { id: 42, type: "private", first_name: "Ada" };

function withMessage(fields: Record<string, unknown>, kind = "message"): unknown {
	return { update_id: 1, [kind]: { message_id: 7, date: 1700000000, chat: CHAT, ...fields } };
}

function thrown(fn: () => unknown): unknown {
	try {
		fn();
	} catch (err) {
		return err;
	}
	throw new Error("expected a throw");
}

describe("normalizeUpdate: the shared corpus", () => {
	it("has a manifest entry for every file and a file for every manifest entry", () => {
		expect(CORPUS_FILES.length).toBeGreaterThan(0);
		expect(CORPUS_FILES).toEqual(Object.keys(MANIFEST).sort());
	});

	it.each(CORPUS_FILES)("%s normalises to the manifest's kinds", (name) => {
		const result = normalizeFile(name);
		expect(result.items.map((item) => item.kind)).toEqual(MANIFEST[name].kinds);
		expect(result.primary_kind).toBe(MANIFEST[name].kinds[0] ?? "unknown");
		for (const item of result.items) {
			if (MESSAGE_KINDS.includes(item.kind)) {
				const { chat, message } = asMessage(item);
				expect(Number.isSafeInteger(chat.telegram_id)).toBe(true);
				expect(typeof chat.type).toBe("string");
				expect(chat.type.length).toBeGreaterThan(0);
				expect(Number.isSafeInteger(message.telegram_message_id)).toBe(true);
				expect(message.type).not.toBe("other");
			} else {
				expect(asRaw(item).payload).toBeDefined();
			}
		}
		expect(() => JSON.stringify(result)).not.toThrow();
	});

	it.each([
		["nutgram_text.json", "text"],
		["nutgram_audio.json", "audio"],
		["nutgram_document.json", "document"],
		["nutgram_sticker.json", "sticker"],
		["nutgram_voice.json", "voice"],
		["nutgram_video.json", "video"],
		["aiogram2_message_video_note.json", "video_note"],
		["nutgram_location.json", "location"],
		["nutgram_contact.json", "contact"],
		["nutgram_message_poll.json", "poll"],
		["teloxide_dice_works.json", "dice"],
		["aiogram2_message_game.json", "game"],
		["aiogram2_message_invoice.json", "invoice"],
		["nutgram_successful_payment.json", "successful_payment"],
		["nutgram_refunded_payment.json", "refunded_payment"],
		["teloxide_issue_1107.json", "story"],
		["nutgram_passport_data.json", "passport_data"],
		["nutgram_web_app_data.json", "web_app_data"],
		["nutgram_users_shared.json", "users_shared"],
		["nutgram_chat_shared.json", "chat_shared"],
		["nutgram_giveaway.json", "giveaway"],
		["nutgram_giveaway_winners.json", "giveaway_winners"],
		["nutgram_giveaway_completed.json", "giveaway_completed"],
		["nutgram_giveaway_created.json", "giveaway_created"],
		["nutgram_checklist.json", "checklist"],
		["nutgram_rich_message.json", "rich_message"],
		["nutgram_connected_website.json", "service"],
		["nutgram_community_chat_removed.json", "service"],
		["nutgram_forum_topic_created.json", "service"],
		["nutgram_video_chat_started.json", "service"],
		["telegrambots_message_write_access_allowed.json", "service"],
		["nutgram_checklist_tasks_done.json", "service"],
		["nutgram_chat_owner_changed.json", "service"],
	])("%s is a %s message", (name, type) => {
		const { message } = asMessage(normalizeFile(name).items[0]);
		expect(message.type).toBe(type);
		if (type === "text") expect(message.media).toBeNull();
		else expect(message.media).toMatchObject(type === "service" ? { service: expect.any(String) } : { kind: type });
	});
});

describe("normalizeUpdate: messages", () => {
	it("takes a text message's fields: from, entities, reply-to, thread, chat", () => {
		const item = asMessage(normalizeFile("teloxide_issue_1107_2.json").items[0]);
		expect(item).toMatchObject({ kind: "message", edit: false, migrate_to_chat_id: null });
		expect(item.chat).toEqual({
			telegram_id: -1001293752024,
			business_connection_id: null,
			type: "supergroup",
			title: "CryptoInside Chat",
			username: "cryptoinside_talk",
			first_name: null,
			last_name: null,
			is_forum: false,
		});
		expect(item.message).toEqual({
			telegram_message_id: 134546,
			type: "text",
			text: "/report",
			caption: null,
			entities: [{ length: 7, offset: 0, type: "bot_command" }],
			media: null,
			from: { telegram_id: 5964236329, username: "spacewhaleblues", first_name: "the Cable Guy", last_name: null, is_bot: false },
			reply_to_message_id: 134545,
			// A reply thread in a supergroup without topics: message_thread_id is no forum topic.
			thread_id: null,
			media_group_id: null,
			date: 1721592580,
			edit_date: null,
		});
	});

	it("falls back to caption_entities, and ignores entities that are not arrays", () => {
		const captioned = messageOf(withMessage({ caption: "hi", caption_entities: [{ type: "bold", offset: 0, length: 2 }], entities: "nope" }));
		expect(captioned.message.entities).toEqual([{ type: "bold", offset: 0, length: 2 }]);
		expect(captioned.message.caption).toBe("hi");
		expect(captioned.message.type).toBe("other");
		expect(messageOf(withMessage({ text: "x" })).message.entities).toBeNull();
	});

	it("photo: the largest size by area, with all sizes and the caption", () => {
		const { message } = asMessage(normalizeFile("nutgram_photo.json").items[0]);
		expect(message.type).toBe("photo");
		expect(message.caption).toBe("asdasdasdasdasdasd");
		expect(message.media).toMatchObject({ kind: "photo", file_id: "SAAS", file_unique_id: "SAAS", width: 720, height: 960, file_size: 84913 });
		expect(message.media?.sizes).toHaveLength(3);
	});

	it("photo: the last size when no size has dimensions; an unusable photo field is absent", () => {
		const noDims = messageOf(withMessage({ photo: [{ file_id: "a" }, { file_id: "b" }, "junk"] }));
		expect(noDims.message.media).toMatchObject({ kind: "photo", file_id: "b", width: null, height: null, file_size: null });
		expect(noDims.message.media?.sizes).toHaveLength(2);
		expect(messageOf(withMessage({ photo: "AgAD", text: "t" })).message.type).toBe("text");
		expect(messageOf(withMessage({ photo: [] })).message.type).toBe("other");
	});

	it("keeps a media group id (cut to 64 characters)", () => {
		expect(asMessage(normalizeFile("aiogram2_message_media_group_photo.json").items[0]).message.media_group_id).toEqual(expect.any(String));
		expect(messageOf(withMessage({ text: "t", media_group_id: "g".repeat(100) })).message.media_group_id).toBe("g".repeat(64));
	});

	it("an animation is an animation, though Telegram also sets document", () => {
		const { message } = asMessage(normalizeFile("nutgram_animation.json").items[0]);
		expect(message.type).toBe("animation");
		expect(message.media).toMatchObject({ kind: "animation", file_name: "lol.mp4", file_id: "sdaafsghhjhgkkygrssgdfghgfdgh", width: 1280 });
	});

	it("a venue is a venue, though Telegram also sets location", () => {
		for (const name of ["nutgram_venue.json", "aiogram2_message_venue.json"]) {
			const { message } = asMessage(normalizeFile(name).items[0]);
			expect(message.type).toBe("venue");
			expect(message.media).toMatchObject({ kind: "venue", location: expect.any(Object), title: expect.any(String) });
		}
	});

	it("media keeps its own kind even when the object has a `kind` field; non-object values become {kind, value}", () => {
		expect(messageOf(withMessage({ poll: { kind: "evil", question: "q" } })).message.media).toEqual({ kind: "poll", question: "q" });
		expect(messageOf(withMessage({ dice: 6 })).message.media).toEqual({ kind: "dice", value: 6 });
		expect(messageOf(withMessage({ document: "not-an-object", text: "t" })).message.type).toBe("text");
	});

	it("a channel post without from is sent by its sender_chat", () => {
		const update = {
			update_id: 5,
			channel_post: {
				message_id: 9,
				date: 1700000000,
				chat: { id: -1001, type: "channel", title: "News", username: "news" },
				sender_chat: { id: -1001, type: "channel", title: "News", username: "news" },
				text: "hello",
			},
		};
		const item = messageOf(update);
		expect(item).toMatchObject({ kind: "channel_post", edit: false });
		expect(item.message.from).toEqual({ telegram_id: -1001, username: "news", first_name: "News", last_name: null, is_bot: false });
		expect(messageOf({ update_id: 5, channel_post: { ...update.channel_post, sender_chat: undefined } }).message.from).toBeNull();
	});

	it("a message sent on behalf of a chat is the chat's, not the placeholder user's in `from`", () => {
		const group = { id: -1002, type: "supergroup", title: "Group" };
		const linked = { id: -1003, type: "channel", title: "Linked", username: "linked" };
		// An anonymous admin, an automatic forward from the linked channel, and a user posting as a channel.
		const anonymous = messageOf(withMessage({ chat: group, from: { id: 1087968824, is_bot: true, first_name: "Group", username: "GroupAnonymousBot" }, sender_chat: group, text: "x" }));
		expect(anonymous.message.from).toEqual({ telegram_id: -1002, username: null, first_name: "Group", last_name: null, is_bot: false });
		const forward = messageOf(withMessage({ chat: group, from: { id: 777000, is_bot: false, first_name: "Telegram" }, sender_chat: linked, is_automatic_forward: true, text: "x" }));
		expect(forward.message.from).toMatchObject({ telegram_id: -1003, username: "linked", first_name: "Linked" });
		const asChannel = messageOf(withMessage({ chat: group, from: { id: 136817688, is_bot: true, first_name: "Channel", username: "Channel_Bot" }, sender_chat: linked, text: "x" }));
		expect(asChannel.message.from).toMatchObject({ telegram_id: -1003 });
	});

	it("thread_id is the forum topic: set for topic messages only, never for reply threads", () => {
		const forum = { id: -1004, type: "supergroup", title: "Forum", is_forum: true };
		const inTopic = messageOf(withMessage({ chat: forum, message_thread_id: 33, is_topic_message: true, text: "x" }));
		expect(inTopic.message.thread_id).toBe(33);
		// A reply in the General topic carries the replied message's id as message_thread_id, without is_topic_message.
		const general = normalizeFile("nutgram_message_general_topic_reply.json");
		expect(asMessage(general.items[0]).message.thread_id).toBeNull();
		expect(messageOf(withMessage({ chat: forum, message_thread_id: 66, reply_to_message: { message_id: 66, date: 1, chat: forum }, text: "x" })).message).toMatchObject({
			thread_id: null,
			reply_to_message_id: 66,
		});
	});

	it("a topic's messages are not replies to the topic's creation message; a reply to another topic's message is", () => {
		const forum = { id: -1004, type: "supergroup", title: "Forum", is_forum: true };
		const opening = { message_id: 33, date: 1, chat: forum, forum_topic_created: { name: "T", icon_color: 1 }, message_thread_id: 33, is_topic_message: true };
		const plain = messageOf(withMessage({ chat: forum, message_thread_id: 33, is_topic_message: true, reply_to_message: opening, text: "x" }));
		expect(plain.message).toMatchObject({ thread_id: 33, reply_to_message_id: null });
		for (const file of ["nutgram_message_topic.json", "nutgram_message_different_topic.json"]) {
			const item = asMessage(normalizeFile(file).items[0]);
			expect(item.message.thread_id).toEqual(expect.any(Number));
			expect(item.message.reply_to_message_id).toBeNull();
		}
		const reply = messageOf(withMessage({ chat: forum, message_thread_id: 33, is_topic_message: true, reply_to_message: { message_id: 40, date: 1, chat: forum, text: "q" }, text: "x" }));
		expect(reply.message.reply_to_message_id).toBe(40);
		const acrossTopics = messageOf(withMessage({ chat: forum, message_thread_id: 40, is_topic_message: true, external_reply: { origin: { type: "user", date: 1 }, chat: forum, message_id: 12 }, text: "x" }));
		expect(acrossTopics.message.reply_to_message_id).toBe(12);
		// A reply to a message of another chat has no target here.
		const elsewhere = messageOf(withMessage({ external_reply: { origin: { type: "channel", date: 1 }, chat: { id: -1009, type: "channel" }, message_id: 12 }, text: "x" }));
		expect(elsewhere.message.reply_to_message_id).toBeNull();
	});

	it("a business account's chat is told apart from the bot's own chat with the same id", () => {
		const business = messageOf(withMessage({ business_connection_id: "bc-1", text: "x" }, "business_message"));
		expect(business.chat).toMatchObject({ telegram_id: 42, business_connection_id: "bc-1" });
		expect(messageOf(withMessage({ text: "x" })).chat.business_connection_id).toBeNull();
		const edited = messageOf(withMessage({ business_connection_id: "bc-1", edit_date: 1700000001, text: "y" }, "edited_business_message"));
		expect(edited.chat.business_connection_id).toBe("bc-1");
		const deleted = asRaw(normalizeUpdate({ update_id: 2, deleted_business_messages: { business_connection_id: "bc-2", chat: CHAT, message_ids: [1] } }).items[0]);
		expect(deleted.chat).toMatchObject({ telegram_id: 42, business_connection_id: "bc-2" });
		const button = asRaw(normalizeUpdate({ update_id: 3, callback_query: { id: "q", from: { id: 42 }, message: { message_id: 1, date: 1, chat: CHAT, business_connection_id: "bc-3" }, data: "d" } }).items[0]);
		expect(button.chat).toMatchObject({ business_connection_id: "bc-3" });
		expect(asRaw(normalizeUpdate({ update_id: 4, my_chat_member: { chat: CHAT, business_connection_id: 5 } }).items[0]).chat!.business_connection_id).toBeNull();
	});

	it("a live photo is typed live_photo, keeping its video, although Telegram sets photo too", () => {
		const sizes = [{ file_id: "p", file_unique_id: "pu", width: 90, height: 90 }];
		const item = messageOf(withMessage({ live_photo: { photo: sizes, video: { file_id: "lv", file_unique_id: "lvu" } }, photo: sizes }));
		expect(item.message.type).toBe("live_photo");
		expect(item.message.media).toMatchObject({ kind: "live_photo", video: { file_id: "lv" } });
	});

	it("a channel post with from keeps from", () => {
		const item = asMessage(normalizeFile("nutgram_channel_post.json").items[0]);
		expect(item.chat.type).toBe("channel");
		expect(item.message.from).toMatchObject({ telegram_id: 456, first_name: "Mario", is_bot: false });
	});

	it("edited kinds are edits", () => {
		const item = asMessage(normalizeFile("nutgram_edited_message.json").items[0]);
		expect(item).toMatchObject({ kind: "edited_message", edit: true });
		expect(item.message.edit_date).toEqual(expect.any(Number));
		expect(asMessage(normalizeFile("nutgram_edited_channel_post.json").items[0]).edit).toBe(true);
		expect(asMessage(normalizeFile("nutgram_edited_business_message.json").items[0]).edit).toBe(true);
		expect(asMessage(normalizeFile("nutgram_business_message.json").items[0]).edit).toBe(false);
	});

	it("service messages: type service, media {service, value}", () => {
		const members = asMessage(normalizeFile("nutgram_new_chat_members.json").items[0]).message;
		expect(members.type).toBe("service");
		expect(members.media).toEqual({ service: "new_chat_members", value: [expect.objectContaining({ id: 12345, first_name: "Mario" })] });
		expect(members.text).toBeNull();

		const pinned = asMessage(normalizeFile("teloxide_pinned_message_works.json").items[0]).message;
		expect(pinned.type).toBe("service");
		expect(pinned.media).toEqual({ service: "pinned_message", value: expect.objectContaining({ message_id: 20224, text: "Faster than a bullet" }) });

		const created = asMessage(normalizeFile("nutgram_group_chat_created.json").items[0]).message;
		expect(created.media).toEqual({ service: "group_chat_created", value: true });
	});

	it("migrate_to_chat_id is a service message that sets the item's migrate_to_chat_id", () => {
		const item = asMessage(normalizeFile("nutgram_migrate_to_chat_id.json").items[0]);
		expect(item.migrate_to_chat_id).toBe(123456789);
		expect(item.message.type).toBe("service");
		expect(item.message.media).toEqual({ service: "migrate_to_chat_id", value: 123456789 });
		expect(asMessage(normalizeFile("aiogram2_message_migrate_to_chat_id.json").items[0]).migrate_to_chat_id).toEqual(expect.any(Number));
		expect(asMessage(normalizeFile("nutgram_migrate_from_chat_id.json").items[0]).migrate_to_chat_id).toBeNull();
		expect(messageOf(withMessage({ migrate_to_chat_id: "-100123" })).migrate_to_chat_id).toBeNull();
	});

	it("a message without anything it knows is 'other'", () => {
		expect(messageOf(withMessage({})).message).toMatchObject({ type: "other", media: null, text: null });
	});
});

describe("normalizeUpdate: other kinds and their chats", () => {
	it("callback_query: the chat of its message, or none", () => {
		expect(asRaw(normalizeFile("nutgram_callback_query.json").items[0]).chat).toMatchObject({ telegram_id: 222222222, type: "private" });
		expect(asRaw(normalizeFile("nutgram_callback_query_inaccessible_message.json").items[0]).chat).toMatchObject({ telegram_id: 222222222 });
		expect(asRaw(normalizeFile("nutgram_callback_query_without_message.json").items[0]).chat).toBeNull();
		expect(asRaw(normalizeFile("tgdocs_callback_query.json").items[0]).chat).toBeNull();
	});

	it("chat_member and my_chat_member: their chat; the payload as sent", () => {
		for (const name of ["nutgram_chat_member.json", "nutgram_my_chat_member.json"]) {
			const raw = load(name) as Record<string, unknown>;
			const item = asRaw(normalizeUpdate(raw).items[0]);
			expect(item.chat).toEqual({
				telegram_id: 987654321,
				business_connection_id: null,
				type: "private",
				title: null,
				username: "mariobros",
				first_name: "Mario",
				last_name: "Bros",
				is_forum: false,
			});
			expect(item.payload).toBe(raw[item.kind]);
		}
		expect(asRaw(normalizeFile("teloxide_issue_523.json").items[0]).chat).not.toBeNull();
	});

	it.each([
		"nutgram_chat_join_request.json",
		"nutgram_message_reaction.json",
		"teloxide_message_reaction_updated_2.json",
		"nutgram_message_reaction_count.json",
		"nutgram_chat_boost.json",
		"nutgram_removed_chat_boost.json",
		"nutgram_deleted_business_messages.json",
		"nutgram_guest_message.json",
	])("%s names its chat", (name) => {
		const raw = load(name) as Record<string, { chat: { id: number } }>;
		const item = asRaw(normalizeUpdate(raw).items[0]);
		expect(item.chat?.telegram_id).toBe(raw[item.kind].chat.id);
	});

	it.each(["tgdocs_inline_query.json", "nutgram_chosen_inline_result.json", "nutgram_poll_answer.json", "nutgram_business_connection.json"])(
		"%s has no chat",
		(name) => {
			expect(asRaw(normalizeFile(name).items[0]).chat).toBeNull();
		},
	);

	it("keeps an unknown kind raw, with no chat", () => {
		const raw = load("teloxide_new_update_kind_error.json") as Record<string, unknown>;
		const result = normalizeUpdate(raw);
		expect(result.primary_kind).toBe("new_update_kind");
		expect(result.items).toEqual([{ kind: "new_update_kind", chat: null, payload: raw.new_update_kind }]);
		// Even when the unknown kind carries something that looks like a chat.
		expect(normalizeUpdate({ update_id: 1, future: { chat: CHAT } }).items[0].chat).toBeNull();
	});

	it("gives the five kinds of the multi-kind fixture, in order", () => {
		const result = normalizeFile("telegrambots_multi_kind_update.json");
		expect(result.items.map((item) => item.kind)).toEqual(["message", "edited_message", "inline_query", "chosen_inline_result", "callback_query"]);
		expect(result.primary_kind).toBe("message");
		const message = asMessage(result.items[0]);
		expect(message.message).toMatchObject({ text: "Bold and italics", reply_to_message_id: 1334 });
		expect(message.message.entities).toHaveLength(2);
		expect(asMessage(result.items[1])).toMatchObject({ edit: true, chat: { telegram_id: -10000000000, type: "channel", title: "Test channel" } });
	});

	it("primary_kind follows the update's key order", () => {
		const result = normalizeUpdate({ poll: { id: "p" }, message: { message_id: 1, chat: CHAT, text: "x" }, update_id: 3 });
		expect(result.primary_kind).toBe("poll");
		expect(result.items.map((item) => item.kind)).toEqual(["poll", "message"]);
	});

	it("an update with no kind has no items and primary_kind unknown", () => {
		expect(normalizeUpdate({ update_id: 0 })).toEqual({ update_id: 0, primary_kind: "unknown", items: [] });
		expect(normalizeUpdate({ update_id: 1, message: null })).toEqual({ update_id: 1, primary_kind: "unknown", items: [] });
	});
});

describe("normalizeUpdate: loose and hostile input", () => {
	it("explicit nulls in the corpus are carried, not choked on", () => {
		const doc = asMessage(normalizeFile("nutgram_document.json").items[0]).message;
		expect(doc.media).toMatchObject({ kind: "document", thumb: null, file_name: "document.pdf" });
		expect(asRaw(normalizeFile("nutgram_pre_checkout_query.json").items[0]).payload).toMatchObject({ shipping_option_id: null });
		expect(asMessage(normalizeFile("nutgram_successful_payment.json").items[0]).message.type).toBe("successful_payment");
	});

	it("null kinds are skipped, null fields are absent", () => {
		const result = normalizeUpdate({
			update_id: 1,
			message: null,
			edited_message: {
				message_id: 2,
				chat: { id: 3, type: null, title: null, username: null, is_forum: null },
				from: null,
				text: null,
				entities: null,
				caption_entities: null,
				reply_to_message: null,
				message_thread_id: null,
				media_group_id: null,
				date: null,
				edit_date: null,
				photo: null,
				new_chat_members: null,
			},
		});
		expect(result.primary_kind).toBe("edited_message");
		const item = asMessage(result.items[0]);
		expect(item.chat).toEqual({ telegram_id: 3, business_connection_id: null, type: "unknown", title: null, username: null, first_name: null, last_name: null, is_forum: false });
		expect(item.message).toMatchObject({
			type: "other",
			text: null,
			entities: null,
			from: null,
			reply_to_message_id: null,
			thread_id: null,
			media_group_id: null,
			date: null,
			edit_date: null,
			media: null,
		});
	});

	it("the tgdocs quirks: a chat without type, User objects with a type, a numeric inline_query.id", () => {
		const minimal = asMessage(normalizeFile("tgdocs_message_text_minimal.json").items[0]);
		expect(minimal.chat.type).toBe("unknown");
		expect(minimal.message.from).toEqual({ telegram_id: 1111111, username: "Test", first_name: "Test", last_name: "Test Lastname", is_bot: false });
		const inline = asRaw(normalizeFile("tgdocs_inline_query.json").items[0]);
		expect(inline).toMatchObject({ kind: "inline_query", chat: null, payload: { id: 134567890097 } });
		expect(asMessage(normalizeFile("tgdocs_message_forward_channel.json").items[0]).message.type).toBe("text");
	});

	it("placeholder dates are kept as sent", () => {
		expect(messageOf(withMessage({ text: "t", date: 123456789 })).message.date).toBe(123456789);
		expect(messageOf(withMessage({ text: "t", date: "yesterday" })).message.date).toBeNull();
	});

	it("a message kind without a usable chat or message_id is kept raw, with no chat", () => {
		const cases: unknown[] = [
			{ message_id: 1, text: "no chat" },
			{ message_id: 1, chat: { type: "private" } },
			{ message_id: 1, chat: { id: "42", type: "private" } },
			{ message_id: 1, chat: "42" },
			{ chat: CHAT, text: "no id" },
			{ message_id: "1", chat: CHAT },
			{ message_id: 1.5, chat: CHAT },
			"a string",
			[{ message_id: 1, chat: CHAT }],
			17,
		];
		for (const value of cases) {
			expect(normalizeUpdate({ update_id: 1, channel_post: value }).items).toEqual([{ kind: "channel_post", chat: null, payload: value }]);
		}
	});

	it("values of the wrong type where objects are expected count as absent", () => {
		const item = messageOf(
			withMessage({ from: "bob", reply_to_message: 5, text: 12, caption: {}, sender_chat: [1], animation: "gif", message_thread_id: "3" }),
		);
		expect(item.message).toMatchObject({ type: "other", from: null, reply_to_message_id: null, text: null, caption: null, thread_id: null });
		expect(normalizeUpdate({ update_id: 1, callback_query: "data" }).items[0]).toEqual({ kind: "callback_query", chat: null, payload: "data" });
		expect(normalizeUpdate({ update_id: 1, callback_query: { message: "gone" } }).items[0].chat).toBeNull();
		expect(normalizeUpdate({ update_id: 1, chat_member: { chat: [CHAT] } }).items[0].chat).toBeNull();
	});

	it("prototype keys are plain data", () => {
		const raw = JSON.parse(
			'{"update_id": 1, "__proto__": {"chat": {"id": 1}}, "constructor": 5, "message": {"message_id": 2, "__proto__": {"text": "x"},' +
				' "chat": {"id": 3, "__proto__": {"type": "private"}}, "toString": "y", "hasOwnProperty": 1}}',
		) as unknown;
		const result = normalizeUpdate(raw);
		expect(result.items.map((item) => item.kind)).toEqual(["__proto__", "constructor", "message"]);
		expect(result.items[0].chat).toBeNull();
		const message = asMessage(result.items[2]);
		expect(message.chat.type).toBe("unknown");
		expect(message.message).toMatchObject({ type: "other", text: null, from: null });
		expect(Object.getPrototypeOf(message.message)).toBe(Object.prototype);
		// A message that lacks fields must not pick up Object.prototype's members either.
		expect(messageOf(withMessage({})).message.from).toBeNull();
		expect(normalizeUpdate({ update_id: 1, toString: { chat: CHAT } }).items[0].chat).toBeNull();
	});

	it("a media object with a __proto__ key does not change the media's prototype", () => {
		const raw = JSON.parse(
			'{"update_id": 1, "message": {"message_id": 2, "chat": {"id": 3}, "contact": {"__proto__": {"polluted": true}, "phone_number": "1"}}}',
		) as unknown;
		const media = messageOf(raw).message.media as Record<string, unknown>;
		expect(media.kind).toBe("contact");
		expect(Object.getPrototypeOf(media)).toBe(Object.prototype);
		expect(({} as Record<string, unknown>).polluted).toBeUndefined();
	});

	it("huge and deeply nested values pass through untouched", () => {
		let deep: Record<string, unknown> = { leaf: true };
		for (let i = 0; i < 100_000; i++) deep = { next: deep };
		const sizes = Array.from({ length: 100_000 }, (_, i) => ({ file_id: `f${i}`, width: i, height: i }));
		const update = {
			update_id: 1,
			message: { message_id: 2, chat: CHAT, photo: sizes, caption: "x".repeat(1_000_000), reply_to_message: deep, pinned_message: deep },
			deep_kind: deep,
		};
		const result = normalizeUpdate(update);
		expect(asMessage(result.items[0]).message.media).toMatchObject({ kind: "photo", file_id: "f99999" });
		expect(asMessage(result.items[0]).message.caption).toHaveLength(1_000_000);
		expect(asRaw(result.items[1]).payload).toBe(deep);
	});

	it("cuts strings to their column sizes, by characters, never splitting a surrogate pair", () => {
		const long = "a".repeat(1000);
		const item = messageOf({
			update_id: 1,
			message: {
				message_id: 2,
				chat: { id: 3, type: "t".repeat(40), title: long, username: long, first_name: long, last_name: long, is_forum: true },
				from: { id: 4, username: long, first_name: "😀".repeat(300), last_name: long, is_bot: true },
				text: long,
			},
		});
		expect(item.chat).toEqual({
			telegram_id: 3,
			business_connection_id: null,
			type: "t".repeat(32),
			title: "a".repeat(255),
			username: "a".repeat(64),
			first_name: "a".repeat(255),
			last_name: "a".repeat(255),
			is_forum: true,
		});
		expect(item.message.from).toEqual({ telegram_id: 4, username: "a".repeat(64), first_name: "😀".repeat(255), last_name: "a".repeat(255), is_bot: true });
		expect(item.message.text).toBe(long);
		expect(normalizeUpdate({ update_id: 1, ["k".repeat(100)]: {} }).primary_kind).toBe("k".repeat(64));
	});

	it("is_forum and is_bot are true only when exactly true", () => {
		const item = messageOf({
			update_id: 1,
			message: { message_id: 2, chat: { id: 3, type: "supergroup", is_forum: "true" }, from: { id: 4, is_bot: 1 } },
		});
		expect(item.chat.is_forum).toBe(false);
		expect(item.message.from?.is_bot).toBe(false);
	});
});

describe("normalizeUpdate: NormalizeError", () => {
	it.each([
		["null", null],
		["an array", [{ update_id: 1 }]],
		["a string", '{"update_id": 1}'],
		["a number", 1],
		["a boolean", true],
		["undefined", undefined],
	])("rejects %s as the update itself", (_label, raw) => {
		const err = thrown(() => normalizeUpdate(raw));
		expect(err).toBeInstanceOf(NormalizeError);
		expect(err).toBeInstanceOf(Error);
		expect(err).toMatchObject({ name: "NormalizeError", field: "update" });
	});

	it.each([
		["missing", {}],
		["null", { update_id: null }],
		["a string", { update_id: "1" }],
		["negative", { update_id: -1 }],
		["not an integer", { update_id: 1.5 }],
		["unsafe", { update_id: 2 ** 53 }],
		["NaN", { update_id: NaN }],
		["infinite", { update_id: Infinity }],
		["an object", { update_id: { id: 1 } }],
	])("rejects an update_id that is %s", (_label, raw) => {
		const err = thrown(() => normalizeUpdate({ ...raw, message: { message_id: 1, chat: CHAT, text: "x" } }));
		expect(err).toBeInstanceOf(NormalizeError);
		expect((err as NormalizeError).field).toBe("update_id");
		expect((err as NormalizeError).message).toMatch(/update_id/);
	});

	it("does not take an inherited update_id", () => {
		const raw = Object.create({ update_id: 1 }) as object;
		expect((thrown(() => normalizeUpdate(raw)) as NormalizeError).field).toBe("update_id");
	});

	it("accepts 0 and the largest safe integer", () => {
		expect(normalizeUpdate({ update_id: 0 }).update_id).toBe(0);
		expect(normalizeUpdate({ update_id: Number.MAX_SAFE_INTEGER }).update_id).toBe(Number.MAX_SAFE_INTEGER);
	});
});

describe("readUpdate: lone surrogates", () => {
	const withText = (text: string) => ({ update_id: 1, message: { message_id: 1, date: 1_700_000_000, chat: { id: 5, type: "private" }, text } });
	const textOf = (read: ReturnType<typeof readUpdate>) => (read.update.items[0]!.message as MessageInfo).text;

	it("a lone surrogate is U+FFFD in the update and in the raw JSON alike (the database stores it so; events said the half surrogate)", () => {
		const read = readUpdate(withText("lone \ud83d end"));
		expect(textOf(read)).toBe("lone \ufffd end");
		expect((JSON.parse(read.raw) as { message: { text: string } }).message.text).toBe("lone \ufffd end");
		expect(read.raw).not.toMatch(/\\ud83d/);
		expect(textOf(readUpdate(withText("tail \udc00")))).toBe("tail \ufffd");
	});

	it("leaves whole emoji and a text that spells out a backslash escape as they are", () => {
		expect(textOf(readUpdate(withText("a \ud83d\ude00 b")))).toBe("a 😀 b");
		const spelled = readUpdate(withText("\\ud83d is how it is written"));
		expect(textOf(spelled)).toBe("\\ud83d is how it is written");
		expect(spelled.raw).toBe(JSON.stringify(withText("\\ud83d is how it is written")));
	});
});
