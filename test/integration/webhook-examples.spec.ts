/**
 * The receivers of docs/webhooks.md, run as the doc says (docs/examples/verify.mjs with node,
 * docs/examples/verify.py with python3): deliveries signed by services/delivery/signing.ts pass,
 * tampered, stale or foreign ones get 401, both secrets hold during a rotation, the legacy
 * X-Webhook-Signature check works; and real deliveries from a running gateway (a user's message and
 * the test ping) are accepted.
 */
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { newWebhookSecret, signDelivery } from "../../services/delivery/signing";
import { createWebhook, WEBHOOK_TEST_ENV } from "../support/receivers";
import { userWrites } from "../support/chat-helpers";
import { startTelegramGateway, type TelegramGateway } from "../support/telegram-gateway";

const EXAMPLES = join(__dirname, "..", "..", "docs", "examples");

interface ExampleReceiver {
	url: string;
	/** Lines the receiver printed: one JSON line per event it handled. */
	lines: string[];
	stop(): void;
}

function startExample(command: string[], env: Record<string, string>): Promise<ExampleReceiver> {
	return new Promise((resolve, reject) => {
		const child: ChildProcess = spawn(command[0]!, command.slice(1), {
			cwd: join(__dirname, "..", ".."),
			env: { PATH: process.env.PATH ?? "", HOME: process.env.HOME ?? "", PORT: "0", ...env },
			stdio: ["ignore", "pipe", "pipe"],
		});
		const lines: string[] = [];
		let output = "";
		const timer = setTimeout(() => reject(new Error(`${command.join(" ")} did not start:\n${output}`)), 15_000);
		child.stdout!.on("data", (chunk: Buffer) => {
			output += chunk.toString();
			lines.push(...chunk.toString().split("\n").filter(Boolean));
			const match = /listening on (http:\/\/[^\s]+)/.exec(output);
			if (match) {
				clearTimeout(timer);
				resolve({ url: match[1]!, lines, stop: () => child.kill("SIGTERM") });
			}
		});
		child.stderr!.on("data", (chunk: Buffer) => (output += chunk.toString()));
		child.once("exit", (code) => reject(new Error(`${command.join(" ")} exited with ${code}:\n${output}`)));
	});
}

const body = JSON.stringify({ event_id: "evt_42", event: "new_message", seq: 42, bot_id: 1, chat_id: 7, message: { id: 3, text: "héllo ✓" }, timestamp: "2024-05-01T10:00:00.000Z" });

async function post(url: string, headers: Record<string, string>, payload = body): Promise<number> {
	const res = await fetch(url, { method: "POST", headers: { "content-type": "application/json", ...headers }, body: payload });
	await res.text();
	return res.status;
}

const hasPython = spawnSync("python3", ["--version"]).status === 0;
const runtimes: Array<[string, string[], boolean]> = [
	["node", [process.execPath, join(EXAMPLES, "verify.mjs")], true],
	["python3 (standard library)", ["python3", join(EXAMPLES, "verify.py")], hasPython],
];

describe.each(runtimes)("docs/examples receiver in %s", (_name, command, available) => {
	const run = available ? it : it.skip;
	const receivers: ExampleReceiver[] = [];
	const start = async (env: Record<string, string>) => {
		const r = await startExample(command, env);
		receivers.push(r);
		return r;
	};
	afterAll(() => receivers.forEach((r) => r.stop()));

	run("accepts a delivery signed with its secret and refuses a changed body, another secret or a stale timestamp", async () => {
		const secret = newWebhookSecret();
		const r = await start({ WEBHOOK_SECRET: secret });
		const signed = { ...signDelivery({ current: secret, previous: null }, "evt_42", new Date(), body) };
		expect(await post(r.url, signed)).toBe(204);
		expect(await post(r.url, signed, body.replace("héllo", "hello"))).toBe(401);
		expect(await post(r.url, { ...signDelivery({ current: newWebhookSecret(), previous: null }, "evt_42", new Date(), body) })).toBe(401);
		expect(await post(r.url, { ...signDelivery({ current: secret, previous: null }, "evt_42", new Date(Date.now() - 10 * 60_000), body) })).toBe(401);
		expect(await post(r.url, { "webhook-id": "evt_42" })).toBe(401);
		// Handled once, though accepted twice (the same webhook-id is a retry).
		expect(await post(r.url, signed)).toBe(204);
		expect(r.lines.filter((l) => l.includes('"event_id": "evt_42"') || l.includes('"event_id":"evt_42"'))).toHaveLength(1);
	});

	run("during a rotation, a receiver still on the old secret and one on the new both accept", async () => {
		const previous = newWebhookSecret();
		const current = newWebhookSecret();
		const signed = { ...signDelivery({ current, previous }, "evt_43", new Date(), body) };
		expect(await post((await start({ WEBHOOK_SECRET: previous })).url, signed)).toBe(204);
		expect(await post((await start({ WEBHOOK_SECRET: current })).url, signed)).toBe(204);
	});

	run("CHECK=legacy verifies X-Webhook-Signature", async () => {
		const secret = newWebhookSecret();
		const r = await start({ WEBHOOK_SECRET: secret, CHECK: "legacy" });
		const signed = signDelivery({ current: secret, previous: null }, "evt_44", new Date(), body);
		expect(await post(r.url, { "x-webhook-signature": signed["x-webhook-signature"], "webhook-id": "evt_44" })).toBe(204);
		expect(await post(r.url, { "x-webhook-signature": signed["x-webhook-signature"], "webhook-id": "evt_44" }, body + " ")).toBe(401);
		expect(await post(r.url, { "x-webhook-signature": "sha256=00", "webhook-id": "evt_44" })).toBe(401);
	});
});

describe("docs/examples/verify.mjs against a running gateway", () => {
	let t: TelegramGateway;
	let receiver: ExampleReceiver | undefined;
	beforeAll(async () => {
		t = await startTelegramGateway({ mode: "webhook", env: WEBHOOK_TEST_ENV });
	}, 60_000);
	afterAll(async () => {
		receiver?.stop();
		await t.stop();
	});

	it("accepts the gateway's test ping and a user's message, as the doc's receiver", async () => {
		const added = await t.addBot({ username: "examples_bot" });
		// The secret is only known once the webhook exists: create it, start the receiver, point the webhook at it.
		const hook = await createWebhook(t, { url: "http://127.0.0.1:9/placeholder", scope: "all" });
		receiver = await startExample([process.execPath, join(EXAMPLES, "verify.mjs")], { WEBHOOK_SECRET: hook.secret });
		expect((await t.api("PATCH", `/webhooks/${hook.id}`, { url: `${receiver.url}/hook` })).status).toBe(200);

		const ping = await t.api<{ ok: boolean; status_code: number }>("POST", `/webhooks/${hook.id}/test`);
		expect(ping.body).toMatchObject({ ok: true, status_code: 204 });

		const { chatId } = await userWrites(t, added.token, added.bot.id, { chat_id: 9301, text: "for the example receiver" });
		const deadline = Date.now() + 15_000;
		const delivered = () => receiver!.lines.some((l) => l.includes('"event":"new_message"') && l.includes(`"chat_id":${chatId}`));
		while (!delivered() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
		expect(receiver.lines.filter((l) => l.includes('"event":"ping"'))).toHaveLength(1);
		expect(delivered()).toBe(true);
	});
});

describe("the instructions for trying a receiver locally", () => {
	// A receiver on 127.0.0.1 is refused at webhook creation (400) unless the gateway allows private addresses.
	it.each([
		["docs/examples/verify.mjs", join(EXAMPLES, "verify.mjs"), 1_200],
		["docs/examples/verify.py", join(EXAMPLES, "verify.py"), 1_200],
	])("%s says, in its header, to start the gateway with WEBHOOK_ALLOW_PRIVATE=true", (_name, file, headerChars) => {
		expect(readFileSync(file, "utf8").slice(0, headerChars)).toMatch(/WEBHOOK_ALLOW_PRIVATE=true[\s\S]*refused\s+with\s+400/);
	});

	it("docs/webhooks.md says so where it shows the receivers", () => {
		const guide = readFileSync(join(EXAMPLES, "..", "webhooks.md"), "utf8");
		const receivers = guide.slice(guide.indexOf("[`docs/examples/verify.mjs`]"), guide.indexOf("### Python"));
		expect(receivers).toMatch(/To try a receiver on the machine the gateway runs on, start the gateway with\s+`WEBHOOK_ALLOW_PRIVATE=true`/);
	});
});
