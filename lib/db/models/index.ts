import type { Sequelize } from "sequelize";
import { defineIdentityModels } from "./identity";
import { defineMessagingModels } from "./messaging";
import { defineWebhookModels } from "./webhooks";

export function defineModels(sequelize: Sequelize) {
	return {
		...defineIdentityModels(sequelize),
		...defineMessagingModels(sequelize),
		...defineWebhookModels(sequelize),
	};
}

export type Models = ReturnType<typeof defineModels>;
export * from "./identity";
export * from "./messaging";
export * from "./webhooks";
