/**
 * A retry by hand restarts a delivery's schedule without renumbering its attempts: schedule_base
 * holds the attempts made before that restart, so the log keeps counting (1-6, then 7).
 */
import { DataTypes, type QueryInterface } from "sequelize";

type Step = { context: QueryInterface };

async function hasColumn(qi: QueryInterface): Promise<boolean> {
	return "schedule_base" in (await qi.describeTable("webhook_deliveries"));
}

export async function up({ context: qi }: Step): Promise<void> {
	if (await hasColumn(qi)) return;
	await qi.addColumn("webhook_deliveries", "schedule_base", { type: DataTypes.INTEGER, allowNull: false, defaultValue: 0 });
}

export async function down({ context: qi }: Step): Promise<void> {
	if (!(await hasColumn(qi))) return;
	// A plain DROP COLUMN on both databases: Sequelize's SQLite removeColumn copies and drops the
	// table, and the drop would cascade to the delivery log.
	await qi.sequelize.query("ALTER TABLE webhook_deliveries DROP COLUMN schedule_base");
}
