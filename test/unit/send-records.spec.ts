/** Where Telegram's answer to a send says the message went: its forum topic and what it replies to. */
import { placementOf } from "../../services/bots/send-records";

const answer = (fields: Record<string, unknown>) => ({ message_id: 50, date: 1, chat: { id: -100, type: "supergroup" }, text: "x", ...fields });

describe("placementOf", () => {
	it("a reply Telegram made is recorded with the id it names; one sent without the reply (the target gone) is no reply", () => {
		expect(placementOf(answer({ reply_to_message: { message_id: 7, date: 1, chat: { id: -100 } } }))).toEqual({ reply_to_message_id: 7, thread_id: null });
		expect(placementOf(answer({}))).toEqual({ reply_to_message_id: null, thread_id: null });
	});

	it("a message in a forum topic is in that topic; the topic's opening message Telegram names on it is no reply", () => {
		expect(placementOf(answer({ message_thread_id: 5, is_topic_message: true, reply_to_message: { message_id: 9, date: 1 } }))).toEqual({ reply_to_message_id: 9, thread_id: 5 });
		expect(placementOf(answer({ message_thread_id: 5, is_topic_message: true, reply_to_message: { message_id: 5, date: 1, forum_topic_created: { name: "t" } } }))).toEqual({ reply_to_message_id: null, thread_id: 5 });
		// A reply thread outside topics is not a topic.
		expect(placementOf(answer({ message_thread_id: 9, reply_to_message: { message_id: 9, date: 1 } }))).toEqual({ reply_to_message_id: 9, thread_id: null });
	});

	it("a reply to a message of another topic of the same chat (external_reply) counts; one to another chat does not", () => {
		expect(placementOf(answer({ external_reply: { message_id: 3, chat: { id: -100 } } }))).toEqual({ reply_to_message_id: 3, thread_id: null });
		expect(placementOf(answer({ external_reply: { message_id: 3, chat: { id: -200 } } }))).toEqual({ reply_to_message_id: null, thread_id: null });
	});

	it("an answer that is no message leaves the request's values standing (null); values of the wrong type are left out", () => {
		expect(placementOf(null)).toBeNull();
		expect(placementOf({})).toBeNull();
		expect(placementOf(answer({ message_thread_id: "5", is_topic_message: true, reply_to_message: { message_id: 1e300 } }))).toEqual({ reply_to_message_id: null, thread_id: null });
	});
});
