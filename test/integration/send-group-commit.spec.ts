/** Sending as group commits (test/support/send-group-commit.ts), on SQLite. */
import type { Database } from "../../lib/db/connection";
import { migratedDatabase } from "../support/database";
import { describeSendGroupCommits } from "../support/send-group-commit";

let db: Database;
beforeAll(async () => {
	db = await migratedDatabase();
});
afterAll(() => db.close());

describeSendGroupCommits("sending as group commits (SQLite)", () => db);
