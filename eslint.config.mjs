import js from "@eslint/js";
import tseslint from "typescript-eslint";

export default tseslint.config(
	{ ignores: ["node_modules/", "dist/", "data/", "coverage/", "**/*.js", "**/*.mjs", "**/*.tmp.ts"] },
	js.configs.recommended,
	...tseslint.configs.recommended,
	{
		languageOptions: { parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname } },
		rules: {
			// A dropped promise is a lost error or an unfinished write.
			"@typescript-eslint/no-floating-promises": "error",
			"@typescript-eslint/no-misused-promises": ["error", { checksVoidReturn: { arguments: false } }],
			"@typescript-eslint/no-unused-vars": ["error", { argsIgnorePattern: "^_", varsIgnorePattern: "^_" }],
			"@typescript-eslint/consistent-type-imports": "error",
			eqeqeq: ["error", "smart"],
			"no-console": "off",
		},
	},
);
