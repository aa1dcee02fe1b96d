/**
 * Text formatting as Telegram applies it: parse_mode (HTML, MarkdownV2, legacy Markdown) turned into plain text plus
 * entities, and the entities Telegram finds by itself (commands, mentions, hashtags, URLs). Offsets are UTF-16 units.
 */
import { badRequest, type ApiError } from "./http";
import type { MessageEntity } from "./types";

export interface Formatted {
	text: string;
	entities: MessageEntity[];
}

const cantParse = (what: string): ApiError => badRequest(`can't parse entities: ${what}`);
const byteOffset = (source: string, index: number): number => Buffer.byteLength(source.slice(0, index));

const HTML_TAGS: Record<string, string> = {
	b: "bold", strong: "bold", i: "italic", em: "italic", u: "underline", ins: "underline", s: "strikethrough", strike: "strikethrough",
	del: "strikethrough", code: "code", pre: "pre", a: "text_link", "tg-spoiler": "spoiler", span: "spoiler", blockquote: "blockquote",
};
const HTML_ESCAPES: Record<string, string> = { lt: "<", gt: ">", amp: "&", quot: '"', apos: "'" };

function decodeHtmlEntity(name: string): string | undefined {
	if (!name.startsWith("#")) return HTML_ESCAPES[name.toLowerCase()];
	const code = /^#x/i.test(name) ? parseInt(name.slice(2), 16) : parseInt(name.slice(1), 10);
	return code > 0 && code <= 0x10ffff ? String.fromCodePoint(code) : undefined;
}

function parseHtml(source: string): Formatted {
	let text = "";
	const entities: MessageEntity[] = [];
	const open: Array<{ name: string; type: string; offset: number; url?: string }> = [];
	for (let i = 0; i < source.length; ) {
		const ch = source[i]!;
		if (ch === "&") {
			const m = /^&(#\d{1,7}|#x[0-9a-f]{1,6}|[a-z]{2,5});/i.exec(source.slice(i, i + 12));
			const decoded = m ? decodeHtmlEntity(m[1]!) : undefined;
			text += decoded ?? "&";
			i += decoded !== undefined ? m![0].length : 1;
			continue;
		}
		if (ch !== "<") {
			text += ch;
			i++;
			continue;
		}
		const end = source.indexOf(">", i);
		if (end < 0) throw cantParse(`Can't find end of the tag at byte offset ${byteOffset(source, i)}`);
		const tag = /^<(\/?)([a-z][\w-]*)(.*)>$/is.exec(source.slice(i, end + 1));
		if (!tag) throw cantParse(`Unsupported start tag at byte offset ${byteOffset(source, i)}`);
		const [, closing, rawName, attributes] = tag;
		const name = rawName!.toLowerCase();
		if (!closing) {
			const type = HTML_TAGS[name];
			if (!type || (name === "span" && !/class\s*=\s*["']?tg-spoiler/i.test(attributes!))) {
				throw cantParse(`Unsupported start tag "${name}" at byte offset ${byteOffset(source, i)}`);
			}
			open.push({ name, type, offset: text.length, url: name === "a" ? /href\s*=\s*["']([^"']*)["']/i.exec(attributes!)?.[1] : undefined });
		} else {
			const started = open.pop();
			if (!started || started.name !== name) {
				throw cantParse(`Unmatched end tag at byte offset ${byteOffset(source, i)}, expected "</${started?.name ?? ""}>", found "</${name}>"`);
			}
			const length = text.length - started.offset;
			if (length > 0 && (started.type !== "text_link" || started.url)) {
				entities.push({ type: started.type, offset: started.offset, length, ...(started.url ? { url: started.url } : {}) });
			}
		}
		i = end + 1;
	}
	const unclosed = open.pop();
	if (unclosed) throw cantParse(`Can't find end tag corresponding to start tag "${unclosed.name}"`);
	return { text, entities };
}

const MARKDOWN_V2_RESERVED = "_*[]()~`>#+-=|{}.!";
const MARKERS_V2: Array<[string, string]> = [["||", "spoiler"], ["__", "underline"], ["*", "bold"], ["_", "italic"], ["~", "strikethrough"]];
const MARKERS_V1: Array<[string, string]> = [["*", "bold"], ["_", "italic"]];

/** MarkdownV2 (`v2`) or legacy Markdown. Nesting of the simple markers is supported; link texts are taken literally. */
function parseMarkdown(source: string, v2: boolean): Formatted {
	let text = "";
	const entities: MessageEntity[] = [];
	const open: Array<{ marker: string; type: string; offset: number; at: number }> = [];
	const unescape = (s: string) => (v2 ? s.replace(/\\(.)/gs, "$1") : s);
	for (let i = 0; i < source.length; ) {
		const ch = source[i]!;
		if (ch === "\\" && i + 1 < source.length && (v2 || "_*`[".includes(source[i + 1]!))) {
			text += source[i + 1];
			i += 2;
			continue;
		}
		if (ch === "`") {
			const fence = source.startsWith("```", i) ? "```" : "`";
			const close = source.indexOf(fence, i + fence.length);
			if (close < 0) throw cantParse(`Can't find end of ${fence === "`" ? "Code" : "Pre"} entity at byte offset ${byteOffset(source, i)}`);
			let body = source.slice(i + fence.length, close);
			let language: string | undefined;
			if (fence === "```") {
				const firstLine = /^([\w+-]*)\n/.exec(body);
				if (firstLine) [language, body] = [firstLine[1] || undefined, body.slice(firstLine[0].length)];
			}
			body = unescape(body);
			if (body.length > 0) entities.push({ type: fence === "`" ? "code" : "pre", offset: text.length, length: body.length, ...(language ? { language } : {}) });
			text += body;
			i = close + fence.length;
			continue;
		}
		const link = ch === "[" ? /^\[((?:\\.|[^\]\\])*)\]\(((?:\\.|[^)\\])*)\)/s.exec(source.slice(i)) : null;
		if (link) {
			const label = unescape(link[1]!);
			if (label.length > 0) entities.push({ type: "text_link", offset: text.length, length: label.length, url: unescape(link[2]!) });
			text += label;
			i += link[0].length;
			continue;
		}
		const marker = (v2 ? MARKERS_V2 : MARKERS_V1).find(([m]) => source.startsWith(m, i));
		if (marker) {
			const [m, type] = marker;
			const index = open.findIndex((o) => o.marker === m);
			if (index >= 0) {
				const started = open.splice(index)[0]!;
				if (text.length > started.offset) entities.push({ type, offset: started.offset, length: text.length - started.offset });
			} else open.push({ marker: m, type, offset: text.length, at: i });
			i += m.length;
			continue;
		}
		if (v2 && MARKDOWN_V2_RESERVED.includes(ch)) throw cantParse(`Character '${ch}' is reserved and must be escaped with the preceding '\\'`);
		text += ch;
		i++;
	}
	const unclosed = open[0];
	if (unclosed) {
		throw cantParse(v2 ? `Can't find end of ${unclosed.type[0]!.toUpperCase()}${unclosed.type.slice(1)} entity at byte offset ${byteOffset(source, unclosed.at)}` : `Can't find end of the entity starting at byte offset ${byteOffset(source, unclosed.at)}`);
	}
	return { text, entities };
}

const AUTO_ENTITIES: Array<[string, RegExp]> = [
	["bot_command", /(?<![\w/])\/[a-zA-Z0-9_]{1,64}(?:@[a-zA-Z0-9_]{3,32})?(?![\w/])/g],
	["mention", /(?<![\w@])@[a-zA-Z][a-zA-Z0-9_]{3,31}(?!\w)/g],
	["hashtag", /(?<![\w#])#[^\s#!?.,;:'"()[\]{}<>]*[^\s\d#!?.,;:'"()[\]{}<>][^\s#!?.,;:'"()[\]{}<>]*/g],
	["url", /\bhttps?:\/\/[^\s<>"]+[^\s<>".,;:!?)'\]]/g],
];

/** The entities Telegram detects in plain text by itself. */
export function detectEntities(text: string): MessageEntity[] {
	const found: MessageEntity[] = [];
	for (const [type, pattern] of AUTO_ENTITIES) {
		for (const m of text.matchAll(pattern)) found.push({ type, offset: m.index, length: m[0].length });
	}
	return sortEntities(found).filter((e, i, all) => i === 0 || e.offset >= all[i - 1]!.offset + all[i - 1]!.length);
}

const sortEntities = (entities: MessageEntity[]): MessageEntity[] => entities.sort((a, b) => a.offset - b.offset || b.length - a.length);

/** Applies `parse_mode` (or takes explicit `entities`), then adds the detected entities that overlap nothing. */
export function formatText(source: string, parseMode: string | undefined, explicit: unknown): Formatted {
	let formatted: Formatted;
	if (Array.isArray(explicit)) formatted = { text: source, entities: explicit as MessageEntity[] };
	else if (!parseMode) formatted = { text: source, entities: [] };
	else if (parseMode.toLowerCase() === "html") formatted = parseHtml(source);
	else if (parseMode.toLowerCase() === "markdownv2") formatted = parseMarkdown(source, true);
	else if (parseMode.toLowerCase() === "markdown") formatted = parseMarkdown(source, false);
	else throw badRequest(`unsupported parse_mode "${parseMode}"`);
	const taken = formatted.entities;
	const detected = detectEntities(formatted.text).filter((d) => !taken.some((e) => d.offset < e.offset + e.length && e.offset < d.offset + d.length));
	return { text: formatted.text, entities: sortEntities([...taken, ...detected]) };
}
