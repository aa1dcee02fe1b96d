/** The X-Request-Id of an answer, on every HTTP listener of a node (the api service, the ops server). */
import { randomUUID } from "node:crypto";

const REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/;

/** Keeps a caller's X-Request-Id when it is a sane token, otherwise makes one. */
export function requestIdFor(header: string | string[] | undefined): string {
	const value = Array.isArray(header) ? header[0] : header;
	return value && REQUEST_ID.test(value) ? value : randomUUID();
}
