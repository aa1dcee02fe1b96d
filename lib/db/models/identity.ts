/** Users, roles, permissions, refresh tokens, API keys, chat grants and the security log. */
import {
	DataTypes,
	Model,
	type CreationOptional,
	type InferAttributes,
	type InferCreationAttributes,
	type Sequelize,
} from "sequelize";
import { bindModel, timestamps } from "./columns";

export class BaseUser extends Model<InferAttributes<BaseUser>, InferCreationAttributes<BaseUser>> {
	declare id: CreationOptional<number>;
	declare username: string;
	declare email: string | null;
	declare password_hash: string;
	declare is_active: CreationOptional<boolean>;
	declare last_login_at: Date | null;
	declare created_at: CreationOptional<Date>;
	declare updated_at: CreationOptional<Date>;
}

export class BaseRole extends Model<InferAttributes<BaseRole>, InferCreationAttributes<BaseRole>> {
	declare id: CreationOptional<number>;
	declare name: string;
	declare description: string | null;
}

export class BasePermission extends Model<InferAttributes<BasePermission>, InferCreationAttributes<BasePermission>> {
	declare id: CreationOptional<number>;
	declare name: string;
	declare description: string | null;
}

export class BaseUserRole extends Model<InferAttributes<BaseUserRole>, InferCreationAttributes<BaseUserRole>> {
	declare user_id: number;
	declare role_id: number;
}

export class BaseRolePermission extends Model<InferAttributes<BaseRolePermission>, InferCreationAttributes<BaseRolePermission>> {
	declare role_id: number;
	declare permission_id: number;
}

export class BaseRefreshToken extends Model<InferAttributes<BaseRefreshToken>, InferCreationAttributes<BaseRefreshToken>> {
	declare id: CreationOptional<number>;
	declare user_id: number;
	declare family_id: string;
	declare token_hash: string;
	declare expires_at: Date;
	declare used_at: Date | null;
	declare revoked_at: Date | null;
	declare revoked_reason: string | null;
	declare created_ip: string | null;
	declare user_agent: string | null;
	declare created_at: CreationOptional<Date>;
}

export class BaseApiKey extends Model<InferAttributes<BaseApiKey>, InferCreationAttributes<BaseApiKey>> {
	declare id: CreationOptional<number>;
	declare user_id: number;
	declare name: string;
	declare prefix: string;
	declare key_hash: string;
	/** JSON array of permission names; null means every permission of the owner. */
	declare scopes: string | null;
	declare rate_limit: number | null;
	declare expires_at: Date | null;
	declare revoked_at: Date | null;
	declare last_used_at: Date | null;
	declare created_at: CreationOptional<Date>;
	declare updated_at: CreationOptional<Date>;
}

export class BaseChatPermission extends Model<InferAttributes<BaseChatPermission>, InferCreationAttributes<BaseChatPermission>> {
	declare id: CreationOptional<number>;
	declare chat_id: number;
	declare user_id: number | null;
	declare api_key_id: number | null;
	declare can_read: boolean;
	declare can_send: boolean;
	declare can_manage: boolean;
	declare granted_by_user_id: number | null;
	declare created_at: CreationOptional<Date>;
	declare updated_at: CreationOptional<Date>;
}

export class BaseSecurityEvent extends Model<InferAttributes<BaseSecurityEvent>, InferCreationAttributes<BaseSecurityEvent>> {
	declare id: CreationOptional<number>;
	declare type: string;
	declare user_id: number | null;
	declare api_key_id: number | null;
	declare ip: string | null;
	declare details: string | null;
	declare created_at: CreationOptional<Date>;
}

export type User = BaseUser;
export type Role = BaseRole;
export type Permission = BasePermission;
export type UserRole = BaseUserRole;
export type RolePermission = BaseRolePermission;
export type RefreshToken = BaseRefreshToken;
export type ApiKey = BaseApiKey;
export type ChatPermission = BaseChatPermission;
export type SecurityEvent = BaseSecurityEvent;

const id = { type: DataTypes.BIGINT, autoIncrement: true, primaryKey: true };
const smallId = { type: DataTypes.INTEGER, autoIncrement: true, primaryKey: true };

export function defineIdentityModels(sequelize: Sequelize) {
	const User = bindModel(BaseUser);
	const Role = bindModel(BaseRole);
	const Permission = bindModel(BasePermission);
	const UserRole = bindModel(BaseUserRole);
	const RolePermission = bindModel(BaseRolePermission);
	const RefreshToken = bindModel(BaseRefreshToken);
	const ApiKey = bindModel(BaseApiKey);
	const ChatPermission = bindModel(BaseChatPermission);
	const SecurityEvent = bindModel(BaseSecurityEvent);
	User.init(
		{
			id,
			username: { type: DataTypes.STRING(64), allowNull: false },
			email: { type: DataTypes.STRING(254), allowNull: true },
			password_hash: { type: DataTypes.STRING(255), allowNull: false },
			is_active: { type: DataTypes.BOOLEAN, allowNull: false, defaultValue: true },
			last_login_at: { type: DataTypes.DATE(3), allowNull: true },
			...timestamps(),
		},
		{ sequelize, tableName: "users", timestamps: true, createdAt: "created_at", updatedAt: "updated_at" },
	);
	Role.init(
		{ id: smallId, name: { type: DataTypes.STRING(32), allowNull: false }, description: DataTypes.STRING(255) },
		{ sequelize, tableName: "roles" },
	);
	Permission.init(
		{ id: smallId, name: { type: DataTypes.STRING(64), allowNull: false }, description: DataTypes.STRING(255) },
		{ sequelize, tableName: "permissions" },
	);
	UserRole.init(
		{ user_id: { type: DataTypes.BIGINT, primaryKey: true }, role_id: { type: DataTypes.INTEGER, primaryKey: true } },
		{ sequelize, tableName: "user_roles" },
	);
	RolePermission.init(
		{
			role_id: { type: DataTypes.INTEGER, primaryKey: true },
			permission_id: { type: DataTypes.INTEGER, primaryKey: true },
		},
		{ sequelize, tableName: "role_permissions" },
	);
	RefreshToken.init(
		{
			id,
			user_id: { type: DataTypes.BIGINT, allowNull: false },
			family_id: { type: DataTypes.STRING(64), allowNull: false },
			token_hash: { type: DataTypes.STRING(64), allowNull: false },
			expires_at: { type: DataTypes.DATE(3), allowNull: false },
			used_at: DataTypes.DATE(3),
			revoked_at: DataTypes.DATE(3),
			revoked_reason: DataTypes.STRING(32),
			created_ip: DataTypes.STRING(64),
			user_agent: DataTypes.STRING(255),
			created_at: timestamps().created_at,
		},
		{ sequelize, tableName: "refresh_tokens", timestamps: true, createdAt: "created_at", updatedAt: false },
	);
	ApiKey.init(
		{
			id,
			user_id: { type: DataTypes.BIGINT, allowNull: false },
			name: { type: DataTypes.STRING(100), allowNull: false },
			prefix: { type: DataTypes.STRING(16), allowNull: false },
			key_hash: { type: DataTypes.STRING(255), allowNull: false },
			scopes: DataTypes.TEXT,
			rate_limit: DataTypes.INTEGER,
			expires_at: DataTypes.DATE(3),
			revoked_at: DataTypes.DATE(3),
			last_used_at: DataTypes.DATE(3),
			...timestamps(),
		},
		{ sequelize, tableName: "api_keys", timestamps: true, createdAt: "created_at", updatedAt: "updated_at" },
	);
	ChatPermission.init(
		{
			id,
			chat_id: { type: DataTypes.BIGINT, allowNull: false },
			user_id: DataTypes.BIGINT,
			api_key_id: DataTypes.BIGINT,
			can_read: { type: DataTypes.BOOLEAN, allowNull: false, defaultValue: false },
			can_send: { type: DataTypes.BOOLEAN, allowNull: false, defaultValue: false },
			can_manage: { type: DataTypes.BOOLEAN, allowNull: false, defaultValue: false },
			granted_by_user_id: DataTypes.BIGINT,
			...timestamps(),
		},
		{ sequelize, tableName: "chat_permissions", timestamps: true, createdAt: "created_at", updatedAt: "updated_at" },
	);
	SecurityEvent.init(
		{
			id,
			type: { type: DataTypes.STRING(64), allowNull: false },
			user_id: DataTypes.BIGINT,
			api_key_id: DataTypes.BIGINT,
			ip: DataTypes.STRING(64),
			details: DataTypes.TEXT,
			created_at: timestamps().created_at,
		},
		{ sequelize, tableName: "security_events", timestamps: true, createdAt: "created_at", updatedAt: false },
	);
	return { User, Role, Permission, UserRole, RolePermission, RefreshToken, ApiKey, ChatPermission, SecurityEvent };
}
