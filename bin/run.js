/**
 * `npm run cli|migrate|repl`: runs the entry point bin/<name>.ts from the TypeScript source (through
 * tsx) in a checkout, or the compiled dist/bin/<name>.js where only the build is there: the
 * container image ships dist/ and no sources, so `npm run cli -- ...` works in it as well.
 * Plain JavaScript: it has to run before anything can compile TypeScript.
 */
"use strict";
const { existsSync } = require("node:fs");
const { join } = require("node:path");

const name = process.argv[2] ?? "";
if (!/^[a-z][a-z-]*$/.test(name)) {
	console.error("usage: node bin/run.js <cli|migrate|repl> [arguments]");
	process.exit(2);
}
const source = join(__dirname, `${name}.ts`);
const compiled = join(__dirname, "..", "dist", "bin", `${name}.js`);
// The entry point reads its own arguments from process.argv.slice(2): take the name out.
process.argv.splice(2, 1);

if (existsSync(source)) {
	// What `node --import tsx` loads: TypeScript for require() and for import() (the migrations are imported).
	import("tsx").then(() => require(source));
} else if (existsSync(compiled)) {
	process.setSourceMapsEnabled(true);
	require(compiled);
} else {
	console.error(`No "${name}" to run: neither ${source} nor ${compiled} (npm run build makes the latter)`);
	process.exit(1);
}
