/**
 * The baseline every HTTP benchmark is divided by: a bare moleculer-web route calling one action
 * that answers a constant, in a process of its own, with the gateway's logging settings.
 */
import { ServiceBroker } from "moleculer";
import ApiGateway from "moleculer-web";

const port = Number(process.env.PORT ?? 3900);
const broker = new ServiceBroker({ nodeID: "echo", logger: false, transporter: null });
broker.createService({
	name: "echo",
	actions: {
		echo: () => ({ ok: true }),
		post: { handler: (ctx: { params: unknown }) => ({ ok: true, received: typeof ctx.params }) },
	},
});
broker.createService({
	name: "api",
	mixins: [ApiGateway],
	settings: {
		port,
		ip: "127.0.0.1",
		logRequest: null,
		logResponse: null,
		routes: [{ path: "/", aliases: { "GET echo": "echo.echo", "POST echo": "echo.post" }, mappingPolicy: "restrict" }],
	},
});
void broker.start().then(() => process.stdout.write(`echo ready on ${port}\n`));
process.on("SIGTERM", () => void broker.stop().then(() => process.exit(0)));
