/** Unit and integration tests: embedded mode (SQLite, in-process brokers), no external server. */
module.exports = {
	testEnvironment: "node",
	transform: { "^.+\\.ts$": ["@swc/jest"] },
	roots: ["<rootDir>/test"],
	testMatch: ["<rootDir>/test/unit/**/*.spec.ts", "<rootDir>/test/integration/**/*.spec.ts"],
	setupFiles: ["<rootDir>/test/support/env.ts"],
	testTimeout: 30000,
};
