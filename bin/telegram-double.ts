/**
 * The Telegram Bot API double as a standalone server, for trying the gateway by hand without Telegram:
 * `npm run telegram:double [-- --port 8081]` (or PORT=8081). Any well-formed bot token is accepted (its bot is created
 * on first use) and Telegram's flood limits apply. Stops on SIGINT / SIGTERM.
 */
import { parseArgs } from "node:util";
import { TelegramDouble } from "../test/support/telegram-double";

function usage(root: string): string {
	const token = "123456789:AAExampleExampleExampleExampleExample";
	return `Telegram Bot API double listening on ${root}

Point the gateway at it:
  TELEGRAM_API_ROOT=${root} npm start
Any token shaped like <digits>:<30+ of [A-Za-z0-9_-]> is accepted; the bot is created on first use.

Play a user writing to a bot (webhook or getUpdates, whichever the gateway set up):
  curl -s -X POST ${root}/_double/bot${token}/userSends \\
       -H 'content-type: application/json' -d '{"chat_id": 42, "text": "/start"}'
Also: POST .../userEdits {chat_id, message_id, text}, .../userClicks {chat_id, message_id, data},
      .../memberJoins {chat_id, user_id}, .../enqueueUpdate <any Update>.
See what the bots sent:  curl -s ${root}/_double/bot${token}/sent
List the bots:           curl -s ${root}/_double/bots
Ctrl-C to stop.`;
}

async function main(): Promise<void> {
	const { values } = parseArgs({ options: { port: { type: "string", short: "p" }, help: { type: "boolean", short: "h" } } });
	if (values.help) {
		console.log("usage: npm run telegram:double [-- --port <port>]   (default: $PORT or 8081)");
		return;
	}
	const port = Number(values.port ?? process.env.PORT ?? 8081);
	if (!Number.isInteger(port) || port < 0 || port > 65535) throw new Error(`not a port: ${values.port ?? process.env.PORT}`);
	const telegram = new TelegramDouble({ autoCreateBots: true, floodLimits: true });
	const root = await telegram.start(port);
	console.log(usage(root));
	let stopping = false;
	const stop = (signal: NodeJS.Signals) => {
		if (stopping) return;
		stopping = true;
		console.log(`${signal} received, stopping`);
		telegram.stop().then(
			() => process.exit(0),
			(error: unknown) => {
				console.error(error);
				process.exit(1);
			},
		);
	};
	process.once("SIGINT", stop);
	process.once("SIGTERM", stop);
}

main().catch((error: unknown) => {
	console.error(error instanceof Error ? error.message : error);
	process.exit(1);
});
