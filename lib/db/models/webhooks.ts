/** Outbound webhook subscriptions, their durable deliveries, and every delivery attempt. */
import {
	DataTypes,
	Model,
	type CreationOptional,
	type InferAttributes,
	type InferCreationAttributes,
	type Sequelize,
} from "sequelize";
import { bindModel, timestamps } from "./columns";

export class BaseWebhook extends Model<InferAttributes<BaseWebhook>, InferCreationAttributes<BaseWebhook>> {
	declare id: CreationOptional<number>;
	declare owner_user_id: number | null;
	declare owner_api_key_id: number | null;
	declare url: string;
	declare scope: "all" | "bot" | "chat" | "reply";
	declare bot_id: number | null;
	declare chat_ids: string | null;
	declare reply_to_message_id: number | null;
	declare event_types: string | null;
	declare secret_ciphertext: string;
	declare previous_secret_ciphertext: string | null;
	declare previous_secret_expires_at: Date | null;
	declare key_id: string;
	declare ordered: CreationOptional<boolean>;
	declare max_concurrency: CreationOptional<number>;
	declare is_active: CreationOptional<boolean>;
	declare disabled_reason: string | null;
	/** The event log's head seq at creation: later events are the webhook's (null: created before 0014, its created_at decides). */
	declare after_seq: CreationOptional<number | null>;
	declare created_at: CreationOptional<Date>;
	declare updated_at: CreationOptional<Date>;
}

export type DeliveryStatus = "pending" | "in_flight" | "succeeded" | "failed" | "dead";

export class BaseWebhookDelivery extends Model<InferAttributes<BaseWebhookDelivery>, InferCreationAttributes<BaseWebhookDelivery>> {
	declare id: CreationOptional<number>;
	declare webhook_id: number;
	declare event_seq: number;
	declare event_type: string;
	declare chat_id: number | null;
	declare status: DeliveryStatus;
	declare attempts: CreationOptional<number>;
	/** Attempts made before the schedule last restarted (a retry by hand). */
	declare schedule_base: CreationOptional<number>;
	declare next_attempt_at: Date;
	declare lease_owner: string | null;
	declare lease_until: Date | null;
	declare last_status_code: number | null;
	declare last_error: string | null;
	declare delivered_at: Date | null;
	declare created_at: CreationOptional<Date>;
	declare updated_at: CreationOptional<Date>;
}

export class BaseWebhookAttempt extends Model<InferAttributes<BaseWebhookAttempt>, InferCreationAttributes<BaseWebhookAttempt>> {
	declare id: CreationOptional<number>;
	declare delivery_id: number;
	declare attempt: number;
	declare started_at: Date;
	declare duration_ms: number;
	declare status_code: number | null;
	declare error: string | null;
	declare response_excerpt: string | null;
}

export type Webhook = BaseWebhook;
export type WebhookDelivery = BaseWebhookDelivery;
export type WebhookAttempt = BaseWebhookAttempt;

const id = { type: DataTypes.BIGINT, autoIncrement: true, primaryKey: true };

export function defineWebhookModels(sequelize: Sequelize) {
	const Webhook = bindModel(BaseWebhook);
	const WebhookDelivery = bindModel(BaseWebhookDelivery);
	const WebhookAttempt = bindModel(BaseWebhookAttempt);
	Webhook.init(
		{
			id,
			owner_user_id: DataTypes.BIGINT,
			owner_api_key_id: DataTypes.BIGINT,
			url: { type: DataTypes.STRING(2048), allowNull: false },
			scope: { type: DataTypes.STRING(16), allowNull: false },
			bot_id: DataTypes.BIGINT,
			chat_ids: DataTypes.TEXT,
			reply_to_message_id: DataTypes.BIGINT,
			event_types: DataTypes.TEXT,
			secret_ciphertext: { type: DataTypes.TEXT, allowNull: false },
			previous_secret_ciphertext: DataTypes.TEXT,
			previous_secret_expires_at: DataTypes.DATE(3),
			key_id: { type: DataTypes.STRING(32), allowNull: false },
			ordered: { type: DataTypes.BOOLEAN, allowNull: false, defaultValue: false },
			max_concurrency: { type: DataTypes.INTEGER, allowNull: false, defaultValue: 8 },
			is_active: { type: DataTypes.BOOLEAN, allowNull: false, defaultValue: true },
			disabled_reason: DataTypes.STRING(255),
			after_seq: DataTypes.BIGINT,
			...timestamps(),
		},
		{ sequelize, tableName: "webhooks", timestamps: true, createdAt: "created_at", updatedAt: "updated_at" },
	);
	WebhookDelivery.init(
		{
			id,
			webhook_id: { type: DataTypes.BIGINT, allowNull: false },
			event_seq: { type: DataTypes.BIGINT, allowNull: false },
			event_type: { type: DataTypes.STRING(32), allowNull: false },
			chat_id: DataTypes.BIGINT,
			status: { type: DataTypes.STRING(16), allowNull: false },
			attempts: { type: DataTypes.INTEGER, allowNull: false, defaultValue: 0 },
			schedule_base: { type: DataTypes.INTEGER, allowNull: false, defaultValue: 0 },
			next_attempt_at: { type: DataTypes.DATE(3), allowNull: false },
			lease_owner: DataTypes.STRING(128),
			lease_until: DataTypes.DATE(3),
			last_status_code: DataTypes.INTEGER,
			last_error: DataTypes.STRING(1024),
			delivered_at: DataTypes.DATE(3),
			...timestamps(),
		},
		{ sequelize, tableName: "webhook_deliveries", timestamps: true, createdAt: "created_at", updatedAt: "updated_at" },
	);
	WebhookAttempt.init(
		{
			id,
			delivery_id: { type: DataTypes.BIGINT, allowNull: false },
			attempt: { type: DataTypes.INTEGER, allowNull: false },
			started_at: { type: DataTypes.DATE(3), allowNull: false },
			duration_ms: { type: DataTypes.INTEGER, allowNull: false },
			status_code: DataTypes.INTEGER,
			error: DataTypes.STRING(1024),
			response_excerpt: DataTypes.TEXT,
		},
		{ sequelize, tableName: "webhook_attempts" },
	);
	return { Webhook, WebhookDelivery, WebhookAttempt };
}
