/** The fault suite: a cluster on private MariaDB, NATS and Redis processes it kills and restarts (see .ci/run). */
module.exports = {
	testEnvironment: "node",
	transform: { "^.+\\.ts$": ["@swc/jest"] },
	roots: ["<rootDir>/test"],
	testMatch: ["<rootDir>/test/faults/**/*.spec.ts"],
	setupFiles: ["<rootDir>/test/support/env.ts"],
	testTimeout: 240000,
};
