/** Bots, chats, raw updates, messages with their edit history, the send queue, and the event log. */
import {
	DataTypes,
	Model,
	type CreationOptional,
	type InferAttributes,
	type InferCreationAttributes,
	type Sequelize,
} from "sequelize";
import { bindModel, timestamps } from "./columns";

export class BaseBot extends Model<InferAttributes<BaseBot>, InferCreationAttributes<BaseBot>> {
	declare id: CreationOptional<number>;
	declare telegram_id: number;
	declare username: string;
	declare display_name: string | null;
	declare description: string | null;
	declare token_ciphertext: string;
	declare webhook_secret_ciphertext: string;
	declare key_id: string;
	declare webhook_path: string;
	declare mode: "webhook" | "polling";
	declare is_active: CreationOptional<boolean>;
	declare polling_offset: CreationOptional<number>;
	declare last_error: string | null;
	declare created_by_user_id: number | null;
	declare created_at: CreationOptional<Date>;
	declare updated_at: CreationOptional<Date>;
}

export class BaseChat extends Model<InferAttributes<BaseChat>, InferCreationAttributes<BaseChat>> {
	declare id: CreationOptional<number>;
	declare bot_id: number;
	declare telegram_id: number;
	/** '' for the bot's own chats; a business account's chats carry its connection (migration 0010). */
	declare business_connection_id: CreationOptional<string>;
	declare type: string;
	declare title: string | null;
	declare username: string | null;
	declare first_name: string | null;
	declare last_name: string | null;
	declare is_forum: CreationOptional<boolean>;
	declare migrated_to_chat_id: number | null;
	declare created_at: CreationOptional<Date>;
	declare updated_at: CreationOptional<Date>;
}

export class BaseTelegramUpdate extends Model<InferAttributes<BaseTelegramUpdate>, InferCreationAttributes<BaseTelegramUpdate>> {
	declare id: CreationOptional<number>;
	declare bot_id: number;
	declare update_id: number;
	declare kind: string;
	declare payload: string;
	declare batch_id: string;
	declare received_at: Date;
}

export class BaseMessage extends Model<InferAttributes<BaseMessage>, InferCreationAttributes<BaseMessage>> {
	declare id: CreationOptional<number>;
	declare seq: number | null;
	declare bot_id: number;
	declare chat_id: number;
	declare telegram_message_id: number | null;
	declare direction: "incoming" | "outgoing";
	declare type: string;
	declare text: string | null;
	declare caption: string | null;
	declare entities: string | null;
	declare media: string | null;
	declare from_telegram_id: number | null;
	declare from_username: string | null;
	declare from_first_name: string | null;
	declare from_last_name: string | null;
	declare from_is_bot: boolean | null;
	declare reply_to_message_id: number | null;
	declare thread_id: number | null;
	declare media_group_id: string | null;
	declare date: Date | null;
	declare edit_date: Date | null;
	declare status: "queued" | "sent" | "failed" | null;
	declare error: string | null;
	declare update_row_id: number | null;
	declare sent_by: string | null;
	/** Idempotency-Key of the POST that created an outgoing message, unique per chat. */
	declare client_key: CreationOptional<string | null>;
	/** sha256 of what that POST asked for (services/bots/outbox.ts): the key sent again must ask the same. */
	declare client_request: CreationOptional<string | null>;
	declare created_at: CreationOptional<Date>;
	declare updated_at: CreationOptional<Date>;
}

export class BaseMessageEdit extends Model<InferAttributes<BaseMessageEdit>, InferCreationAttributes<BaseMessageEdit>> {
	declare id: CreationOptional<number>;
	declare message_id: number;
	declare seq: number;
	declare text: string | null;
	declare caption: string | null;
	declare entities: string | null;
	declare media: string | null;
	declare edit_date: Date | null;
	declare created_at: CreationOptional<Date>;
}

export class BaseOutboundQueueItem extends Model<InferAttributes<BaseOutboundQueueItem>, InferCreationAttributes<BaseOutboundQueueItem>> {
	declare message_id: number;
	declare bot_id: number;
	declare chat_telegram_id: number;
	declare chat_kind: "private" | "group";
	declare request: string;
	declare attempts: CreationOptional<number>;
	declare next_attempt_at: Date;
	declare lease_owner: string | null;
	declare lease_until: Date | null;
	declare last_error: string | null;
	declare created_at: CreationOptional<Date>;
}

export class BaseEventRecord extends Model<InferAttributes<BaseEventRecord>, InferCreationAttributes<BaseEventRecord>> {
	declare seq: number;
	declare type: string;
	declare bot_id: number | null;
	declare chat_id: number | null;
	declare message_id: number | null;
	declare payload: string;
	declare created_at: Date;
}

export class BaseSequenceCounter extends Model<InferAttributes<BaseSequenceCounter>, InferCreationAttributes<BaseSequenceCounter>> {
	declare name: string;
	declare value: number;
}

export type Bot = BaseBot;
export type Chat = BaseChat;
export type TelegramUpdate = BaseTelegramUpdate;
export type Message = BaseMessage;
export type MessageEdit = BaseMessageEdit;
export type OutboundQueueItem = BaseOutboundQueueItem;
export type EventRecord = BaseEventRecord;
export type SequenceCounter = BaseSequenceCounter;

const id = { type: DataTypes.BIGINT, autoIncrement: true, primaryKey: true };
const withTimestamps = { timestamps: true, createdAt: "created_at", updatedAt: "updated_at" } as const;

export function defineMessagingModels(sequelize: Sequelize) {
	const Bot = bindModel(BaseBot);
	const Chat = bindModel(BaseChat);
	const TelegramUpdate = bindModel(BaseTelegramUpdate);
	const Message = bindModel(BaseMessage);
	const MessageEdit = bindModel(BaseMessageEdit);
	const OutboundQueueItem = bindModel(BaseOutboundQueueItem);
	const EventRecord = bindModel(BaseEventRecord);
	const SequenceCounter = bindModel(BaseSequenceCounter);
	Bot.init(
		{
			id,
			telegram_id: { type: DataTypes.BIGINT, allowNull: false },
			username: { type: DataTypes.STRING(64), allowNull: false },
			display_name: DataTypes.STRING(128),
			description: DataTypes.TEXT,
			token_ciphertext: { type: DataTypes.TEXT, allowNull: false },
			webhook_secret_ciphertext: { type: DataTypes.TEXT, allowNull: false },
			key_id: { type: DataTypes.STRING(32), allowNull: false },
			webhook_path: { type: DataTypes.STRING(64), allowNull: false },
			mode: { type: DataTypes.STRING(16), allowNull: false },
			is_active: { type: DataTypes.BOOLEAN, allowNull: false, defaultValue: true },
			polling_offset: { type: DataTypes.BIGINT, allowNull: false, defaultValue: 0 },
			last_error: DataTypes.TEXT,
			created_by_user_id: DataTypes.BIGINT,
			...timestamps(),
		},
		{ sequelize, tableName: "bots", ...withTimestamps },
	);
	Chat.init(
		{
			id,
			bot_id: { type: DataTypes.BIGINT, allowNull: false },
			telegram_id: { type: DataTypes.BIGINT, allowNull: false },
			business_connection_id: { type: DataTypes.STRING(128), allowNull: false, defaultValue: "" },
			type: { type: DataTypes.STRING(32), allowNull: false },
			title: DataTypes.STRING(255),
			username: DataTypes.STRING(64),
			first_name: DataTypes.STRING(255),
			last_name: DataTypes.STRING(255),
			is_forum: { type: DataTypes.BOOLEAN, allowNull: false, defaultValue: false },
			migrated_to_chat_id: DataTypes.BIGINT,
			...timestamps(),
		},
		{ sequelize, tableName: "chats", ...withTimestamps },
	);
	TelegramUpdate.init(
		{
			id,
			bot_id: { type: DataTypes.BIGINT, allowNull: false },
			update_id: { type: DataTypes.BIGINT, allowNull: false },
			kind: { type: DataTypes.STRING(64), allowNull: false },
			payload: { type: DataTypes.TEXT, allowNull: false },
			batch_id: { type: DataTypes.STRING(32), allowNull: false },
			received_at: { type: DataTypes.DATE(3), allowNull: false },
		},
		{ sequelize, tableName: "telegram_updates" },
	);
	Message.init(
		{
			id,
			seq: DataTypes.BIGINT,
			bot_id: { type: DataTypes.BIGINT, allowNull: false },
			chat_id: { type: DataTypes.BIGINT, allowNull: false },
			telegram_message_id: DataTypes.BIGINT,
			direction: { type: DataTypes.STRING(8), allowNull: false },
			type: { type: DataTypes.STRING(32), allowNull: false },
			text: DataTypes.TEXT,
			caption: DataTypes.TEXT,
			entities: DataTypes.TEXT,
			media: DataTypes.TEXT,
			from_telegram_id: DataTypes.BIGINT,
			from_username: DataTypes.STRING(64),
			from_first_name: DataTypes.STRING(255),
			from_last_name: DataTypes.STRING(255),
			from_is_bot: DataTypes.BOOLEAN,
			reply_to_message_id: DataTypes.BIGINT,
			thread_id: DataTypes.BIGINT,
			media_group_id: DataTypes.STRING(64),
			date: DataTypes.DATE(3),
			edit_date: DataTypes.DATE(3),
			status: DataTypes.STRING(16),
			error: DataTypes.TEXT,
			update_row_id: DataTypes.BIGINT,
			sent_by: DataTypes.STRING(64),
			client_key: DataTypes.STRING(128),
			client_request: DataTypes.STRING(64),
			...timestamps(),
		},
		{ sequelize, tableName: "messages", ...withTimestamps },
	);
	MessageEdit.init(
		{
			id,
			message_id: { type: DataTypes.BIGINT, allowNull: false },
			seq: { type: DataTypes.BIGINT, allowNull: false },
			text: DataTypes.TEXT,
			caption: DataTypes.TEXT,
			entities: DataTypes.TEXT,
			media: DataTypes.TEXT,
			edit_date: DataTypes.DATE(3),
			created_at: timestamps().created_at,
		},
		{ sequelize, tableName: "message_edits", timestamps: true, createdAt: "created_at", updatedAt: false },
	);
	OutboundQueueItem.init(
		{
			message_id: { type: DataTypes.BIGINT, primaryKey: true },
			bot_id: { type: DataTypes.BIGINT, allowNull: false },
			chat_telegram_id: { type: DataTypes.BIGINT, allowNull: false },
			chat_kind: { type: DataTypes.STRING(16), allowNull: false },
			request: { type: DataTypes.TEXT, allowNull: false },
			attempts: { type: DataTypes.INTEGER, allowNull: false, defaultValue: 0 },
			next_attempt_at: { type: DataTypes.DATE(3), allowNull: false },
			lease_owner: DataTypes.STRING(128),
			lease_until: DataTypes.DATE(3),
			last_error: DataTypes.TEXT,
			created_at: timestamps().created_at,
		},
		{ sequelize, tableName: "outbound_queue", timestamps: true, createdAt: "created_at", updatedAt: false },
	);
	EventRecord.init(
		{
			seq: { type: DataTypes.BIGINT, primaryKey: true },
			type: { type: DataTypes.STRING(32), allowNull: false },
			bot_id: DataTypes.BIGINT,
			chat_id: DataTypes.BIGINT,
			message_id: DataTypes.BIGINT,
			payload: { type: DataTypes.TEXT, allowNull: false },
			created_at: { type: DataTypes.DATE(3), allowNull: false },
		},
		{ sequelize, tableName: "events" },
	);
	SequenceCounter.init(
		{
			name: { type: DataTypes.STRING(64), primaryKey: true },
			value: { type: DataTypes.BIGINT, allowNull: false },
		},
		{ sequelize, tableName: "sequences" },
	);
	return { Bot, Chat, TelegramUpdate, Message, MessageEdit, OutboundQueueItem, EventRecord, SequenceCounter };
}
