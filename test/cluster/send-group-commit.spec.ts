/** Sending as group commits (test/support/send-group-commit.ts), on MariaDB: its locks, RETURNING and IN lists. */
import { describeSendGroupCommits } from "../support/send-group-commit";
import { openDatabase } from "../../lib/db/connection";
import { migratedScratchDatabase, MYSQL_URL } from "./support/cluster";

const scratch = migratedScratchDatabase("tgw_group_commit");

describeSendGroupCommits("sending as group commits (MariaDB)", () => scratch.db, () => openDatabase(`${MYSQL_URL}/${scratch.name}`));
