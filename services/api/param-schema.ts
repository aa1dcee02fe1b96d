/**
 * fastest-validator rules as OpenAPI 3.0 schemas (the JSON Schema dialect of OpenAPI 3.0: `nullable`,
 * boolean `exclusiveMinimum`). Only what a client can send over HTTP is described; rules that exist
 * for the server alone (custom checks, functions, classes) become an unconstrained schema.
 */

import { ISO_TIME } from "../../lib/validator";

export type Schema = Record<string, unknown>;
export type Rule = Record<string, unknown>;

/** Keys of a params object that configure the validator instead of naming a field. */
const META_KEYS = new Set(["$$strict", "$$async", "$$root", "$$type", "$$timeout"]);

function scalar(text: string): unknown {
	if (text === "true") return true;
	if (text === "false") return false;
	if (text !== "" && !Number.isNaN(Number(text))) return Number(text);
	return text;
}

/** `"string|optional|min:3"`, `"number[]"`: fastest-validator's shorthand as a rule object. */
export function parseShorthand(text: string): Rule {
	const [head = "any", ...flags] = text.split("|").map((s) => s.trim());
	const rule: Rule = {};
	for (const flag of flags) {
		const sep = flag.indexOf(":");
		if (sep === -1) rule[flag] = true;
		else rule[flag.slice(0, sep)] = scalar(flag.slice(sep + 1));
	}
	if (head.endsWith("[]")) {
		// "string[]|optional": the flags belong to the array, its items are the bare type.
		return { ...rule, type: "array", items: { type: head.slice(0, -2) } };
	}
	return { ...rule, type: head };
}

/** A rule in any of its written forms (object, shorthand, list of alternatives) as one rule object. */
export function normalizeRule(rule: unknown): Rule {
	if (typeof rule === "string") return parseShorthand(rule);
	if (Array.isArray(rule)) return { type: "multi", rules: rule };
	if (rule && typeof rule === "object") {
		const object = rule as Rule;
		// `{ $$type: "object|optional", a: "string" }`: a nested object written without `props`.
		if (typeof object.$$type === "string") {
			const props = Object.fromEntries(Object.entries(object).filter(([key]) => !META_KEYS.has(key)));
			return { ...parseShorthand(object.$$type), props };
		}
		return object;
	}
	return { type: "any" };
}

/** Whether a client may leave the field out. */
export function isOptional(rule: unknown): boolean {
	const r = normalizeRule(rule);
	// fastest-validator: a list of alternatives may be left out only when every alternative may.
	if (r.type === "multi") return ((r.rules as unknown[]) ?? []).every(isOptional);
	return r.optional === true || r.default !== undefined || r.type === "forbidden";
}

/** RegExp source in-process; after a hop over the transporter a RegExp arrives as `{}` and is dropped. */
function patternOf(value: unknown): string | undefined {
	if (value instanceof RegExp) return value.source;
	if (typeof value === "string") return value;
	return undefined;
}

/**
 * A pattern for the text a client sends, when fastest-validator checks it after changing its case
 * (`lowercase` / `uppercase`): each letter the pattern names matches in either case, as the
 * client's "Alice" matches `^[a-z]+$` once lower-cased. Escapes (`\d`, `\S`) and group names stay.
 */
export function eitherCase(pattern: string): string {
	const other = (c: string) => (c === c.toLowerCase() ? c.toUpperCase() : c.toLowerCase());
	const letter = (c: string | undefined): c is string => c !== undefined && /^[A-Za-z]$/.test(c);
	let out = "";
	let inClass = false;
	for (let i = 0; i < pattern.length; i++) {
		const c = pattern[i]!;
		if (c === "\\") {
			out += c + (pattern[i + 1] ?? "");
			i++;
		} else if (!inClass && pattern.startsWith("(?<", i) && /^\(\?<[A-Za-z_$][\w$]*>/.test(pattern.slice(i))) {
			const name = /^\(\?<[A-Za-z_$][\w$]*>/.exec(pattern.slice(i))![0];
			out += name;
			i += name.length - 1;
		} else if (c === "[" && !inClass) {
			inClass = true;
			out += c;
		} else if (c === "]" && inClass) {
			inClass = false;
			out += c;
		} else if (inClass && letter(c) && pattern[i + 1] === "-" && letter(pattern[i + 2]) && (c === c.toLowerCase()) === (pattern[i + 2] === pattern[i + 2]!.toLowerCase())) {
			const to = pattern[i + 2]!;
			out += `${c}-${to}${other(c)}-${other(to)}`;
			i += 2;
		} else if (letter(c)) {
			out += inClass ? c + other(c) : `[${c}${other(c)}]`;
		} else {
			out += c;
		}
	}
	return out;
}

/**
 * lib/validator.ts's form for a date converted from a request's text (its ISO_TIME): a date, or a
 * date and time (seconds and fractions optional) with its offset. JSON Schema's `date-time` wants the
 * seconds and refuses a plain date, which the gateway takes.
 */
export const ISO_TIME_PATTERN = ISO_TIME.source;

function stringSchema(r: Rule, format?: string): Schema {
	const s: Schema = { type: "string" };
	if (format) s.format = format;
	if (typeof r.min === "number") s.minLength = r.min;
	if (typeof r.max === "number") s.maxLength = r.max;
	if (typeof r.length === "number") s.minLength = s.maxLength = r.length;
	if (typeof r.empty === "boolean" && !r.empty && s.minLength === undefined) s.minLength = 1;
	const pattern = patternOf(r.pattern);
	// The case is changed before the pattern is checked: the client may send either.
	if (pattern) s.pattern = r.lowercase || r.uppercase ? eitherCase(pattern) : pattern;
	const notes = [
		r.trim ? "Blanks around it are trimmed before the checks." : null,
		r.lowercase ? "Taken in lower case." : r.uppercase ? "Taken in upper case." : null,
	].filter(Boolean);
	if (notes.length > 0) s.description = notes.join(" ");
	if (Array.isArray(r.enum)) s.enum = r.enum;
	if (r.numeric) s.pattern ??= "^-?[0-9]+(\\.[0-9]+)?$";
	if (r.alpha) s.pattern ??= "^[a-zA-Z]+$";
	if (r.alphanum) s.pattern ??= "^[a-zA-Z0-9]+$";
	if (r.alphadash) s.pattern ??= "^[a-zA-Z0-9_-]+$";
	if (r.hex) s.pattern ??= "^([0-9a-fA-F]{2})+$";
	if (r.base64) s.format ??= "byte";
	return s;
}

function numberSchema(r: Rule): Schema {
	const s: Schema = { type: r.integer ? "integer" : "number" };
	if (typeof r.min === "number") s.minimum = r.min;
	if (typeof r.max === "number") s.maximum = r.max;
	if (r.positive && (typeof s.minimum !== "number" || s.minimum <= 0)) {
		s.minimum = 0;
		s.exclusiveMinimum = true;
		// An integer above 0 is at least 1: say it the way clients read most easily.
		if (r.integer) {
			s.minimum = 1;
			delete s.exclusiveMinimum;
		}
	}
	if (r.negative && (typeof s.maximum !== "number" || s.maximum >= 0)) {
		s.maximum = 0;
		s.exclusiveMaximum = true;
	}
	if (typeof r.equal === "number") s.enum = [r.equal];
	return s;
}

function objectSchema(props: Record<string, unknown> | undefined, strict: unknown): Schema {
	const s: Schema = { type: "object" };
	if (props) {
		const properties: Record<string, Schema> = {};
		const required: string[] = [];
		for (const [name, rule] of Object.entries(props)) {
			if (META_KEYS.has(name) || normalizeRule(rule).type === "forbidden") continue;
			properties[name] = ruleToSchema(rule);
			if (!isOptional(rule)) required.push(name);
		}
		s.properties = properties;
		if (required.length > 0) s.required = required;
	}
	// Only a refusing strict mode closes the object ("remove" drops unknown fields silently).
	if (strict === true) s.additionalProperties = false;
	return s;
}

function typedSchema(r: Rule): Schema {
	switch (r.type) {
		case "string":
			return stringSchema(r);
		case "email":
			return stringSchema(r, "email");
		case "url":
			return stringSchema(r, "uri");
		case "uuid":
			return stringSchema(r, "uuid");
		case "date":
			return { type: "string", format: "date-time" };
		case "objectID":
			return { type: "string", pattern: "^[0-9a-fA-F]{24}$" };
		case "mac":
		case "luhn":
		case "currency":
			return { type: "string" };
		case "number":
			return numberSchema(r);
		case "boolean":
			return { type: "boolean" };
		case "enum": {
			const values = Array.isArray(r.values) ? r.values : [];
			const types = new Set(values.map((v) => typeof v));
			const type = types.size === 1 ? { string: "string", number: "number", boolean: "boolean" }[[...types][0] as string] : undefined;
			return { ...(type ? { type } : {}), enum: values };
		}
		case "equal":
			return { enum: [r.value] };
		case "array": {
			const s: Schema = { type: "array", items: r.items !== undefined ? ruleToSchema(r.items) : {} };
			if (typeof r.min === "number") s.minItems = r.min;
			if (typeof r.max === "number") s.maxItems = r.max;
			if (typeof r.length === "number") s.minItems = s.maxItems = r.length;
			if (r.empty === false && s.minItems === undefined) s.minItems = 1;
			if (r.unique) s.uniqueItems = true;
			if (Array.isArray(r.enum)) s.items = { ...(s.items as Schema), enum: r.enum };
			return s;
		}
		case "tuple": {
			const items = Array.isArray(r.items) ? r.items.map(ruleToSchema) : [];
			// OpenAPI 3.0 has no positional items: say what each position may hold and how many there are.
			return { type: "array", items: items.length > 0 ? { anyOf: items } : {}, minItems: items.length, maxItems: items.length };
		}
		case "object":
			return objectSchema((r.props ?? r.properties) as Record<string, unknown> | undefined, r.strict);
		case "record":
			return { type: "object", additionalProperties: r.value !== undefined ? ruleToSchema(r.value) : {} };
		case "multi":
			return { anyOf: ((r.rules as unknown[]) ?? []).map(ruleToSchema) };
		default:
			// any, custom, function, class, forbidden and unknown plug-in types: nothing a client can rely on.
			return {};
	}
}

/** One fastest-validator rule (object, shorthand or list of alternatives) as an OpenAPI 3.0 schema. */
export function ruleToSchema(rule: unknown): Schema {
	const r = normalizeRule(rule);
	const s = typedSchema(r);
	if (r.nullable === true) s.nullable = true;
	if (r.default !== undefined && typeof r.default !== "function") s.default = r.default;
	if (typeof r.description === "string") s.description = r.description;
	return s;
}

/**
 * A top-level field of an action's params (a path, query or body field): as ruleToSchema, except a
 * date converted from text, which lib/validator.ts takes in ISO 8601 form only (a plain date
 * included) before fastest-validator's `new Date()` sees it.
 */
export function fieldSchema(rule: unknown): Schema {
	const r = normalizeRule(rule);
	if (r.type !== "date" || r.convert !== true) return ruleToSchema(rule);
	const s = ruleToSchema(rule);
	delete s.format;
	return {
		...s,
		pattern: ISO_TIME_PATTERN,
		description: typeof r.description === "string" ? r.description : "An ISO 8601 date (2026-12-07), or date and time with its offset (2026-12-07T16:00:00Z, 2026-12-07T18:00+02:00).",
	};
}

/** An action's whole `params` as an object schema: its fields, which are required, and strictness. */
export function paramsToSchema(params: Record<string, unknown> | undefined): Schema {
	if (!params) return { type: "object" };
	return objectSchema(params, params.$$strict);
}

/** The fields of a params object, without the validator's own `$$` keys. */
export function paramFields(params: Record<string, unknown> | undefined): Array<[string, unknown]> {
	return Object.entries(params ?? {}).filter(([name]) => !META_KEYS.has(name));
}
