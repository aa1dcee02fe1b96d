import { DataTypes } from "sequelize";

/** created_at / updated_at with millisecond precision, filled by Sequelize on create and update. */
export function timestamps() {
	return {
		created_at: { type: DataTypes.DATE(3), allowNull: false },
		updated_at: { type: DataTypes.DATE(3), allowNull: false },
	};
}

/**
 * Each Database gets model classes of its own (a subclass per call), so two databases open in one
 * process (two test fixtures, a migration next to a running node) never rebind each other's models.
 */
export function bindModel<T extends abstract new (...args: never[]) => unknown>(base: T): T {
	const bound = class extends (base as unknown as new (...args: never[]) => object) {};
	// Sequelize names a model after its class: keep "User", not the anonymous subclass's "".
	Object.defineProperty(bound, "name", { value: base.name.replace(/^Base/, "") });
	return bound as unknown as T;
}
