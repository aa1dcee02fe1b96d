/** The cluster suite: real node processes on NATS, MariaDB and Redis (see .ci/run). */
module.exports = {
	testEnvironment: "node",
	transform: { "^.+\\.ts$": ["@swc/jest"] },
	roots: ["<rootDir>/test"],
	testMatch: ["<rootDir>/test/cluster/**/*.spec.ts"],
	setupFiles: ["<rootDir>/test/support/env.ts"],
	testTimeout: 120000,
};
