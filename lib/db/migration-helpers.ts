/**
 * Helpers that make each migration step safe to re-run: MySQL commits DDL one statement at a time,
 * so a migration that failed halfway must be able to run again over what it already created.
 */
import { DataTypes, type ModelAttributes, type QueryInterface } from "sequelize";

const MYSQL_TABLE_OPTIONS = { charset: "utf8mb4", collate: "utf8mb4_unicode_ci", engine: "InnoDB" };

export async function tableExists(qi: QueryInterface, table: string): Promise<boolean> {
	const tables = (await qi.showAllTables()) as Array<string | { tableName: string }>;
	return tables.some((t) => (typeof t === "string" ? t : t.tableName) === table);
}

export async function createTable(qi: QueryInterface, table: string, attributes: ModelAttributes): Promise<void> {
	if (await tableExists(qi, table)) return;
	const mysql = qi.sequelize.getDialect() === "mysql";
	const columns = Object.fromEntries(
		Object.entries(attributes).map(([name, column]) => {
			const { mediumOnMysql, ...rest } = column as { mediumOnMysql?: boolean; allowNull?: boolean };
			return [name, mediumOnMysql && mysql ? { ...rest, type: DataTypes.TEXT("medium") } : rest];
		}),
	);
	await qi.createTable(table, columns as ModelAttributes, mysql ? MYSQL_TABLE_OPTIONS : {});
}

export async function dropTable(qi: QueryInterface, table: string): Promise<void> {
	if (await tableExists(qi, table)) await qi.dropTable(table);
}

function indexName(table: string, fields: string[], unique: boolean): string {
	return `${unique ? "uq" : "ix"}_${table}_${fields.join("_")}`;
}

async function hasIndex(qi: QueryInterface, table: string, name: string): Promise<boolean> {
	const existing = (await qi.showIndex(table)) as Array<{ name: string }>;
	return existing.some((index) => index.name === name);
}

export async function addIndex(
	qi: QueryInterface,
	table: string,
	fields: string[],
	options: { unique?: boolean } = {},
): Promise<void> {
	const name = indexName(table, fields, options.unique ?? false);
	if (await hasIndex(qi, table, name)) return;
	await qi.addIndex(table, fields, { name, unique: options.unique ?? false });
}

/** Drops an index addIndex made (by its fields), if it is there. */
export async function removeIndex(qi: QueryInterface, table: string, fields: string[], options: { unique?: boolean } = {}): Promise<void> {
	const name = indexName(table, fields, options.unique ?? false);
	if (await hasIndex(qi, table, name)) await qi.removeIndex(table, name);
}

/** Column shorthands shared by the migrations. */
export const col = {
	id: () => ({ type: DataTypes.BIGINT, autoIncrement: true, primaryKey: true, allowNull: false }),
	smallId: () => ({ type: DataTypes.INTEGER, autoIncrement: true, primaryKey: true, allowNull: false }),
	ref: (table: string, options: { nullable?: boolean; onDelete?: "CASCADE" | "SET NULL"; type?: "int" | "bigint" } = {}) => ({
		type: options.type === "int" ? DataTypes.INTEGER : DataTypes.BIGINT,
		allowNull: options.nullable ?? false,
		references: { model: table, key: "id" },
		onDelete: options.onDelete ?? "CASCADE",
		onUpdate: "CASCADE",
	}),
	bigint: (nullable = true) => ({ type: DataTypes.BIGINT, allowNull: nullable }),
	int: (nullable = true, defaultValue?: number) => ({ type: DataTypes.INTEGER, allowNull: nullable, defaultValue }),
	string: (length: number, nullable = true) => ({ type: DataTypes.STRING(length), allowNull: nullable }),
	text: (nullable = true) => ({ type: DataTypes.TEXT, allowNull: nullable }),
	/** Up to 16 MB on MySQL: raw Telegram updates and event payloads (bodies are capped at 1 MB). */
	mediumText: (nullable = true) => ({ type: DataTypes.TEXT, allowNull: nullable, mediumOnMysql: true }),
	bool: (defaultValue: boolean) => ({ type: DataTypes.BOOLEAN, allowNull: false, defaultValue }),
	time: (nullable = true) => ({ type: DataTypes.DATE(3), allowNull: nullable }),
};
