/**
 * Times leave the API as ISO-8601 UTC strings. Rows may hold Date objects (models, mysql2) or the
 * strings SQLite keeps ("2026-01-02 03:04:05.678 +00:00"); both come out the same.
 */
export function iso(value: Date | string | number | null | undefined): string | null {
	if (value === null || value === undefined) return null;
	const date = value instanceof Date ? value : new Date(typeof value === "string" ? value.replace(" ", "T").replace(" +00:00", "Z") : value);
	return Number.isNaN(date.getTime()) ? null : date.toISOString();
}

export function toDate(value: Date | string | number | null | undefined): Date | null {
	const text = iso(value);
	return text === null ? null : new Date(text);
}
