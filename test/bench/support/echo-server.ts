/**
 * The baseline every HTTP benchmark is divided by: a bare moleculer-web route calling one action
 * that answers a constant, in a process of its own, with the gateway's logging settings.
 * ECHO_WORK_US makes its GET do that many microseconds of CPU work per request: what a ratio to
 * the bare echo costs in server time (test/bench/auth.bench.ts's calibration).
 */
import { performance } from "node:perf_hooks";
import { ServiceBroker } from "moleculer";
import ApiGateway from "moleculer-web";

const port = Number(process.env.PORT ?? 3900);
const workMs = Number(process.env.ECHO_WORK_US ?? 0) / 1000;

function work(): void {
	const until = performance.now() + workMs;
	while (performance.now() < until);
}

const broker = new ServiceBroker({ nodeID: "echo", logger: false, transporter: null });
broker.createService({
	name: "echo",
	actions: {
		echo: () => {
			if (workMs > 0) work();
			return { ok: true };
		},
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
