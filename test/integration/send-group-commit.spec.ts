/** Sending as group commits (test/support/send-group-commit.ts), on SQLite. */
import { join } from "node:path";
import { openDatabase, type Database } from "../../lib/db/connection";
import { migratedDatabase } from "../support/database";
import { tempDir } from "../support/harness";
import { describeSendGroupCommits } from "../support/send-group-commit";

// A file, so that a second handle (another node's) opens the same store.
const url = `sqlite:${join(tempDir(), "send-group-commit.sqlite")}`;
let db: Database;
beforeAll(async () => {
	db = await migratedDatabase(url);
});
afterAll(() => db.close());

describeSendGroupCommits("sending as group commits (SQLite)", () => db, () => openDatabase(url));
