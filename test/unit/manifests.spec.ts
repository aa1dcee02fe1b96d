/**
 * The deployment files (Dockerfile, docker-compose.yml, k8s/) against what the gateway needs: the
 * right SERVICES per role, probes on /health and /ready, node run directly (npm swallows SIGTERM),
 * required secrets, and an environment that lib/config.ts actually accepts in cluster mode.
 * No Docker or Kubernetes here: the files are parsed and checked statically.
 */
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { basename, join, relative } from "node:path";
import { randomBytes } from "node:crypto";
import { parseAllDocuments } from "yaml";
import { ConfigError, loadConfig } from "../../lib/config";
import { GATEWAY_NODE_FLAGS } from "../support/processes";

const ROOT = join(__dirname, "..", "..");
const K8S_DIR = join(ROOT, "k8s");
const COMPOSE_FILE = join(ROOT, "docker-compose.yml");
const NAMESPACE = "telegram-gateway";
const APP_LABEL = "telegram-gateway";

const ROLES = {
	api: ["api", "auth", "realtime"],
	worker: ["auth", "bots", "chats", "ingest", "broker", "delivery"],
	grpc: ["grpc", "auth"],
} as const;
type Role = keyof typeof ROLES;
const ROLE_NAMES = Object.keys(ROLES) as Role[];

const COMPOSE_GATEWAYS: Record<string, Role> = { "api-1": "api", "api-2": "api", worker: "worker", grpc: "grpc" };
const COMPOSE_STORES = ["mysql", "nats", "redis"];

// ---------------------------------------------------------------- minimal shapes of what is checked

type Labels = Record<string, string>;
interface Meta {
	name?: string;
	namespace?: string;
	labels?: Labels;
}
interface K8sObject {
	apiVersion?: string;
	kind?: string;
	metadata?: Meta;
	spec?: unknown;
	data?: Record<string, string>;
	stringData?: Record<string, string>;
	resources?: string[];
}
interface HttpProbe {
	httpGet?: { path?: string; port?: string | number };
	failureThreshold?: number;
	periodSeconds?: number;
}
interface Container {
	name: string;
	image?: string;
	command?: string[];
	args?: string[];
	env?: { name: string; value?: string; valueFrom?: { fieldRef?: { fieldPath?: string } } }[];
	envFrom?: { configMapRef?: { name: string }; secretRef?: { name: string } }[];
	ports?: { name?: string; containerPort: number }[];
	livenessProbe?: HttpProbe;
	readinessProbe?: HttpProbe;
	startupProbe?: HttpProbe;
	lifecycle?: { preStop?: { exec?: { command?: string[] } } };
	resources?: { requests?: Record<string, string | number>; limits?: Record<string, string | number> };
	securityContext?: { readOnlyRootFilesystem?: boolean; allowPrivilegeEscalation?: boolean; runAsNonRoot?: boolean; runAsUser?: number };
	volumeMounts?: { name: string; mountPath: string }[];
}
interface PodSpec {
	terminationGracePeriodSeconds?: number;
	securityContext?: { runAsNonRoot?: boolean; runAsUser?: number };
	containers: Container[];
	volumes?: { name: string; emptyDir?: unknown }[];
}
interface DeploymentSpec {
	replicas?: number;
	selector: { matchLabels: Labels };
	template: { metadata: { labels: Labels }; spec: PodSpec };
}
interface ServiceSpec {
	selector?: Labels;
	ports: { name?: string; port: number; targetPort?: string | number }[];
}
interface HpaSpec {
	scaleTargetRef: { apiVersion?: string; kind: string; name: string };
	minReplicas?: number;
	maxReplicas: number;
	metrics?: { type: string; resource?: { name: string; target?: { type?: string; averageUtilization?: number } } }[];
}
interface PdbSpec {
	minAvailable?: number | string;
	maxUnavailable?: number | string;
	selector?: { matchLabels?: Labels };
}
interface ComposeService {
	image?: string;
	build?: unknown;
	command?: string | string[];
	environment?: Record<string, string | number | boolean | null> | string[];
	healthcheck?: { test?: string | string[]; disable?: boolean };
	depends_on?: string[] | Record<string, { condition?: string }>;
	ports?: (string | { target?: number; published?: number | string })[];
	restart?: string;
	stop_grace_period?: string;
}
interface ComposeFile {
	services?: Record<string, ComposeService>;
	[key: string]: unknown;
}

// ---------------------------------------------------------------- loading

function must<T>(value: T | undefined | null, what: string): T {
	if (value === undefined || value === null) throw new Error(`missing: ${what}`);
	return value;
}

function yamlFilesUnder(dir: string): string[] {
	const out: string[] = [];
	for (const entry of readdirSync(dir, { withFileTypes: true })) {
		const path = join(dir, entry.name);
		if (entry.isDirectory()) out.push(...yamlFilesUnder(path));
		else if (/\.ya?ml$/.test(entry.name)) out.push(path);
	}
	return out.sort();
}

interface Parsed {
	file: string;
	docs: unknown[];
	errors: string[];
}

function parseFile(file: string): Parsed {
	// Compose (like most YAML 1.1 tooling) honours `<<` merge keys; YAML 1.2 needs them enabled.
	const docs = parseAllDocuments(readFileSync(file, "utf8"), { merge: true });
	const list = Array.isArray(docs) ? docs : [];
	const errors = list.flatMap((doc) => [...doc.errors, ...doc.warnings].map((e) => `${relative(ROOT, file)}: ${e.message}`));
	return { file, docs: list.map((doc) => doc.toJS() as unknown).filter((doc) => doc !== null && doc !== undefined), errors };
}

const k8sFiles = existsSync(K8S_DIR) ? yamlFilesUnder(K8S_DIR) : [];
const parsedK8s = k8sFiles.map(parseFile);
const parsedCompose = existsSync(COMPOSE_FILE) ? parseFile(COMPOSE_FILE) : { file: COMPOSE_FILE, docs: [], errors: ["docker-compose.yml is missing"] };

const objects: (K8sObject & { file: string })[] = parsedK8s.flatMap((p) => p.docs.map((doc) => ({ ...(doc as K8sObject), file: basename(p.file) })));
const ofKind = (kind: string) => objects.filter((o) => o.kind === kind);
const named = (kind: string, name: string) => ofKind(kind).find((o) => o.metadata?.name === name);

const deploymentOf = (role: Role) => must(named("Deployment", `gateway-${role}`), `Deployment gateway-${role}`);
const specOf = (role: Role) => deploymentOf(role).spec as DeploymentSpec;
const containerOf = (role: Role): Container => {
	const containers = specOf(role).template.spec.containers;
	expect(containers).toHaveLength(1);
	return containers[0];
};
const envOf = (container: Container, name: string) => container.env?.find((e) => e.name === name);

function selects(selector: Labels | undefined, labels: Labels | undefined): boolean {
	if (!selector || Object.keys(selector).length === 0) return false;
	return Object.entries(selector).every(([k, v]) => labels?.[k] === v);
}

/** CPU in cores, memory in bytes. */
function quantity(raw: string | number): number {
	if (typeof raw === "number") return raw;
	const m = /^([0-9.]+)(m|k|M|G|Ki|Mi|Gi)?$/.exec(raw);
	if (!m) throw new Error(`unparseable quantity "${raw}"`);
	const factor: Record<string, number> = { m: 1e-3, k: 1e3, M: 1e6, G: 1e9, Ki: 1024, Mi: 1024 ** 2, Gi: 1024 ** 3 };
	return Number(m[1]) * (m[2] ? factor[m[2]] : 1);
}

// Dockerfile: instructions with continuation lines joined, comments dropped.
function dockerInstructions(): { op: string; args: string }[] {
	const text = readFileSync(join(ROOT, "Dockerfile"), "utf8").replace(/\\\r?\n/g, " ");
	return text
		.split(/\r?\n/)
		.map((line) => line.trim())
		.filter((line) => line && !line.startsWith("#"))
		.map((line) => {
			const m = /^(\S+)\s+(.*)$/.exec(line);
			return { op: (m?.[1] ?? line).toUpperCase(), args: (m?.[2] ?? "").replace(/\s+/g, " ").trim() };
		});
}

function finalStage(): { op: string; args: string }[] {
	const all = dockerInstructions();
	const lastFrom = all.map((i) => i.op).lastIndexOf("FROM");
	return all.slice(lastFrom);
}

function imageCmd(): string[] {
	const cmd = must(finalStage().filter((i) => i.op === "CMD").pop(), "CMD in the Dockerfile's final stage");
	// Exec form only: the shell form would make /bin/sh PID 1, which does not forward SIGTERM.
	const parsed = JSON.parse(cmd.args) as unknown;
	expect(Array.isArray(parsed)).toBe(true);
	return parsed as string[];
}

/** What actually starts in the container: the explicit command (+args), or the image's CMD. */
function effectiveCommand(command: string[] | string | undefined, args?: string[]): string[] {
	if (command === undefined) return args ? args : imageCmd();
	const list = typeof command === "string" ? command.trim().split(/\s+/) : command;
	return [...list, ...(args ?? [])];
}

function expectRunsNodeDirectly(argv: string[]): void {
	expect(argv[0]).toBe("node");
	expect(argv).toContain("dist/bin/gateway.js");
	expect(argv.join(" ")).not.toMatch(/\bnpm\b|\bnpx\b|\btsx\b|\bsh -c\b/);
}

// Compose helpers.
const compose = (parsedCompose.docs[0] ?? {}) as ComposeFile;
const composeServices = compose.services ?? {};
const composeService = (name: string) => must(composeServices[name], `compose service ${name}`);

function composeEnv(service: ComposeService): Record<string, string> {
	const env = service.environment ?? {};
	if (Array.isArray(env)) {
		return Object.fromEntries(env.map((item) => [item.split("=")[0], item.slice(item.indexOf("=") + 1)]));
	}
	return Object.fromEntries(Object.entries(env).map(([k, v]) => [k, v === null ? "" : String(v)]));
}

/** Compose's variable interpolation: ${X}, ${X:-default}, ${X-default}, ${X:?error}, ${X?error}, $$. */
function interpolate(value: string, vars: Record<string, string | undefined>): string {
	return value.replace(/\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}/g, (match, name: string | undefined, op: string | undefined, arg: string | undefined) => {
		if (match === "$$") return "$";
		const v = vars[name!];
		const unset = v === undefined || (op?.startsWith(":") === true && v === "");
		if (op === ":?" || op === "?") {
			if (unset) throw new Error(`required variable ${name} is missing: ${arg}`);
			return v!;
		}
		if (op === ":-" || op === "-") return unset ? (arg ?? "") : v!;
		return v ?? "";
	});
}

const validSecrets = () => ({
	JWT_SECRET: randomBytes(32).toString("base64"),
	TOKEN_ENCRYPTION_KEYS: `k1:${randomBytes(32).toString("base64")}`,
});

function configProblems(env: Record<string, string>): string[] {
	try {
		loadConfig(env);
		return [];
	} catch (err) {
		if (err instanceof ConfigError) return err.problems;
		throw err;
	}
}

// ---------------------------------------------------------------- tests

describe("deployment manifests parse", () => {
	it("finds the k8s manifests and docker-compose.yml, and every YAML document parses cleanly", () => {
		expect(k8sFiles.length).toBeGreaterThanOrEqual(5);
		const errors = [...parsedK8s, parsedCompose].flatMap((p) => p.errors);
		expect(errors).toEqual([]);
		expect(objects.length).toBeGreaterThanOrEqual(12);
		expect(parsedCompose.docs).toHaveLength(1);
	});

	it("every Kubernetes object has apiVersion, kind and name, and namespaced ones live in telegram-gateway", () => {
		for (const o of objects) {
			expect({ file: o.file, apiVersion: typeof o.apiVersion, kind: typeof o.kind }).toEqual({ file: o.file, apiVersion: "string", kind: "string" });
			// A Kustomization is kubectl's build input, not an API object: it has no name.
			if (o.kind !== "Kustomization") expect({ file: o.file, name: typeof o.metadata?.name }).toEqual({ file: o.file, name: "string" });
			if (o.kind !== "Namespace" && o.kind !== "Kustomization") expect({ file: o.file, ns: o.metadata?.namespace }).toEqual({ file: o.file, ns: NAMESPACE });
		}
		expect(named("Namespace", NAMESPACE)).toBeDefined();
	});

	it("the kustomization lists every manifest except the Secret template, and only existing files", () => {
		const kustomization = ofKind("Kustomization")[0];
		if (!kustomization) return; // optional: the README then lists the files to apply
		const listed = must(kustomization.resources, "kustomization resources");
		for (const file of listed) expect(existsSync(join(K8S_DIR, file))).toBe(true);
		expect(listed).not.toContain("secret.example.yaml");
		const expected = k8sFiles
			.map((f) => relative(K8S_DIR, f))
			.filter((f) => f !== "secret.example.yaml" && !/^kustomization\.ya?ml$/.test(f));
		expect([...listed].sort()).toEqual(expected.sort());
	});
});

describe("k8s Deployments, one per role", () => {
	it("there is exactly one Deployment per role and no other", () => {
		expect(ofKind("Deployment").map((d) => d.metadata?.name).sort()).toEqual(ROLE_NAMES.map((r) => `gateway-${r}`).sort());
	});

	it.each(ROLE_NAMES)("%s: labelled by name and component, and its selector matches its own pods", (role) => {
		const labels = { "app.kubernetes.io/name": APP_LABEL, "app.kubernetes.io/component": role };
		const deployment = deploymentOf(role);
		expect(deployment.apiVersion).toBe("apps/v1");
		expect(deployment.metadata?.labels).toMatchObject(labels);
		expect(specOf(role).template.metadata.labels).toMatchObject(labels);
		expect(specOf(role).selector.matchLabels).toEqual(labels);
	});

	it.each(ROLE_NAMES)("%s: SERVICES is exactly the role's list, and NODE_ID is the pod name", (role) => {
		const container = containerOf(role);
		const services = must(envOf(container, "SERVICES")?.value, `SERVICES on gateway-${role}`);
		expect(services.split(",").map((s) => s.trim())).toEqual([...ROLES[role]]);
		expect(envOf(container, "NODE_ID")?.valueFrom?.fieldRef?.fieldPath).toBe("metadata.name");
		// SERVICES must not also come from the shared ConfigMap or Secret, where it would be ambiguous.
		for (const source of [...ofKind("ConfigMap"), ...ofKind("Secret")]) {
			expect(Object.keys({ ...source.data, ...source.stringData })).not.toContain("SERVICES");
		}
	});

	it.each(ROLE_NAMES)("%s: takes its environment from the ConfigMap and the Secret that exist", (role) => {
		const envFrom = containerOf(role).envFrom ?? [];
		const configMap = must(envFrom.find((e) => e.configMapRef)?.configMapRef?.name, "envFrom configMapRef");
		const secret = must(envFrom.find((e) => e.secretRef)?.secretRef?.name, "envFrom secretRef");
		expect(named("ConfigMap", configMap)).toBeDefined();
		expect(named("Secret", secret)).toBeDefined();
		// The Secret comes last, so it can override a ConfigMap key (REDIS_URL with a password).
		expect(envFrom.findIndex((e) => e.secretRef)).toBeGreaterThan(envFrom.findIndex((e) => e.configMapRef));
	});

	it.each(ROLE_NAMES)("%s: port 3000 named http (50051 named grpc on the grpc role)", (role) => {
		const ports = containerOf(role).ports ?? [];
		expect(ports).toContainEqual(expect.objectContaining({ name: "http", containerPort: 3000 }));
		const grpc = ports.find((p) => p.containerPort === 50051);
		if (role === "grpc") expect(grpc?.name).toBe("grpc");
		else expect(grpc).toBeUndefined();
	});

	it.each(ROLE_NAMES)("%s: liveness /health, readiness /ready, startup /health, all on the named http port", (role) => {
		const c = containerOf(role);
		const httpPort = (c.ports ?? []).find((p) => p.name === "http")?.containerPort;
		const probePort = (probe: HttpProbe | undefined) => {
			const port = probe?.httpGet?.port;
			return typeof port === "string" ? (c.ports ?? []).find((p) => p.name === port)?.containerPort : port;
		};
		expect(c.livenessProbe?.httpGet?.path).toBe("/health");
		expect(c.readinessProbe?.httpGet?.path).toBe("/ready");
		expect(c.startupProbe?.httpGet?.path).toBe("/health");
		for (const probe of [c.livenessProbe, c.readinessProbe, c.startupProbe]) {
			expect(probe?.httpGet?.port).toBe("http");
			expect(probePort(probe)).toBe(httpPort);
		}
		// Migrations run before the node listens: the startup budget must cover them (>= 60 s).
		const startup = must(c.startupProbe, "startupProbe");
		expect((startup.failureThreshold ?? 3) * (startup.periodSeconds ?? 10)).toBeGreaterThanOrEqual(60);
	});

	it.each(ROLE_NAMES)("%s: runs node directly (its own command, or the image CMD)", (role) => {
		const c = containerOf(role);
		expectRunsNodeDirectly(effectiveCommand(c.command, c.args));
	});

	it.each(ROLE_NAMES)("%s: starts node with the V8 flags of the image and of npm start", (role) => {
		const c = containerOf(role);
		const scripts = (JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")) as { scripts: Record<string, string> }).scripts;
		for (const flag of GATEWAY_NODE_FLAGS) {
			expect(effectiveCommand(c.command, c.args)).toContain(flag);
			expect(imageCmd()).toContain(flag);
			expect(scripts.start.split(" ")).toContain(flag);
		}
	});

	it.each(ROLE_NAMES)("%s: CPU and memory requests and limits, requests within limits", (role) => {
		const { requests, limits } = must(containerOf(role).resources, "resources");
		for (const key of ["cpu", "memory"]) {
			const request = quantity(must(requests?.[key], `requests.${key}`));
			const limit = quantity(must(limits?.[key], `limits.${key}`));
			expect(request).toBeGreaterThan(0);
			expect(request).toBeLessThanOrEqual(limit);
		}
		// Sensible: at least 128 MiB to run Node, and a memory limit the node can actually get.
		expect(quantity(must(requests?.memory, "memory"))).toBeGreaterThanOrEqual(128 * 1024 ** 2);
		expect(quantity(must(limits?.memory, "memory"))).toBeLessThanOrEqual(8 * 1024 ** 3);
	});

	it.each(ROLE_NAMES)("%s: the V8 heap's ceiling leaves room under the memory limit, and pods holding live connections cap them", (role) => {
		const c = containerOf(role);
		const command = effectiveCommand(c.command, c.args);
		const mb = (flag: string) => Number(must(command.find((arg) => arg.startsWith(`--${flag}=`)), `--${flag}`).split("=")[1]);
		// V8's young generation is 3 semi-spaces (two plus the new large-object space).
		const heapCeilingMiB = mb("max-old-space-size") + 3 * mb("max-semi-space-size");
		const limitMiB = quantity(must(c.resources?.limits?.memory, "limits.memory")) / 1024 ** 2;
		// Code, buffers, sockets and thread stacks live outside the heap: measured ~150 MB on an idle node.
		expect(heapCeilingMiB + 192).toBeLessThanOrEqual(limitMiB);
		const services = must(c.env?.find((e) => e.name === "SERVICES")?.value, "SERVICES").split(",");
		if (services.includes("realtime") || services.includes("grpc")) {
			const perNode = Number(must(c.env?.find((e) => e.name === "LIVE_CONNECTIONS_PER_NODE")?.value, "LIVE_CONNECTIONS_PER_NODE"));
			// ~22 KB of heap each (test/bench/realtime.bench.ts): at most half the old space for them.
			expect(perNode * 22 * 1024).toBeLessThanOrEqual((mb("max-old-space-size") * 1024 ** 2) / 2);
		}
	});

	it.each(ROLE_NAMES)("%s: preStop sleeps, and the grace period covers the sleep plus the 30 s drain", (role) => {
		const spec = specOf(role).template.spec;
		const preStop = must(containerOf(role).lifecycle?.preStop?.exec?.command, "preStop exec command");
		expect(preStop[0]).toBe("sleep");
		const sleep = Number(preStop[1]);
		expect(sleep).toBeGreaterThanOrEqual(5);
		expect(spec.terminationGracePeriodSeconds).toBe(40);
		expect(must(spec.terminationGracePeriodSeconds, "grace")).toBeGreaterThan(sleep + 30);
	});

	it.each(ROLE_NAMES)("%s: non-root, read-only root filesystem, emptyDirs on /app/data and /tmp", (role) => {
		const spec = specOf(role).template.spec;
		const c = containerOf(role);
		expect(c.securityContext?.runAsNonRoot ?? spec.securityContext?.runAsNonRoot).toBe(true);
		// The image's USER is a name; the kubelet can only verify runAsNonRoot against a numeric uid.
		const uid = c.securityContext?.runAsUser ?? spec.securityContext?.runAsUser;
		expect(typeof uid).toBe("number");
		expect(uid).toBeGreaterThan(0);
		expect(c.securityContext?.readOnlyRootFilesystem).toBe(true);
		expect(c.securityContext?.allowPrivilegeEscalation).toBe(false);
		for (const path of ["/app/data", "/tmp"]) {
			const mount = must(c.volumeMounts?.find((m) => m.mountPath === path), `volumeMount ${path}`);
			const volume = must(spec.volumes?.find((v) => v.name === mount.name), `volume ${mount.name}`);
			expect(volume.emptyDir).toBeDefined();
		}
	});

	it("HPA-managed Deployments leave replicas to the HPA; the fixed grpc role runs at least 2 pods", () => {
		expect(specOf("api").replicas).toBeUndefined();
		expect(specOf("worker").replicas).toBeUndefined();
		expect(specOf("grpc").replicas).toBeGreaterThanOrEqual(2);
	});
});

describe("k8s Services, HPAs and PDBs", () => {
	const deploymentsSelectedBy = (selector: Labels | undefined) =>
		ofKind("Deployment").filter((d) => selects(selector, (d.spec as DeploymentSpec).template.metadata.labels)).map((d) => d.metadata?.name);

	it.each([
		["gateway-http", "api", 80, "http", 3000],
		["gateway-grpc", "grpc", 50051, "grpc", 50051],
	] as const)("%s selects the %s pods and targets their named port", (name, role, port, targetPort, containerPort) => {
		const service = must(named("Service", name), `Service ${name}`);
		const spec = service.spec as ServiceSpec;
		expect(spec.selector).toEqual({ "app.kubernetes.io/name": APP_LABEL, "app.kubernetes.io/component": role });
		expect(deploymentsSelectedBy(spec.selector)).toEqual([`gateway-${role}`]);
		expect(spec.ports).toHaveLength(1);
		expect(spec.ports[0]).toMatchObject({ port, targetPort });
		expect(containerOf(role).ports).toContainEqual(expect.objectContaining({ name: targetPort, containerPort }));
	});

	it("HPAs (autoscaling/v2) scale gateway-api and gateway-worker on CPU between 2 and 10", () => {
		const hpas = ofKind("HorizontalPodAutoscaler");
		expect(hpas.map((h) => (h.spec as HpaSpec).scaleTargetRef.name).sort()).toEqual(["gateway-api", "gateway-worker"]);
		for (const hpa of hpas) {
			const spec = hpa.spec as HpaSpec;
			expect(hpa.apiVersion).toBe("autoscaling/v2");
			expect(spec.scaleTargetRef).toMatchObject({ apiVersion: "apps/v1", kind: "Deployment" });
			expect(named("Deployment", spec.scaleTargetRef.name)).toBeDefined();
			expect(spec.minReplicas).toBe(2);
			expect(spec.maxReplicas).toBe(10);
			const cpu = must(spec.metrics?.find((m) => m.type === "Resource" && m.resource?.name === "cpu"), "cpu metric");
			expect(cpu.resource?.target?.type).toBe("Utilization");
			expect(cpu.resource?.target?.averageUtilization).toBeGreaterThan(0);
			expect(cpu.resource?.target?.averageUtilization).toBeLessThanOrEqual(100);
		}
	});

	it.each(ROLE_NAMES)("%s has a PodDisruptionBudget (policy/v1, minAvailable 1) selecting exactly its pods", (role) => {
		const pdbs = ofKind("PodDisruptionBudget").filter((p) => deploymentsSelectedBy((p.spec as PdbSpec).selector?.matchLabels).includes(`gateway-${role}`));
		expect(pdbs).toHaveLength(1);
		const [pdb] = pdbs;
		expect(pdb.apiVersion).toBe("policy/v1");
		expect((pdb.spec as PdbSpec).minAvailable).toBe(1);
		expect(deploymentsSelectedBy((pdb.spec as PdbSpec).selector?.matchLabels)).toEqual([`gateway-${role}`]);
	});
});

describe("k8s configuration", () => {
	const SECRET_KEYS = ["DATABASE_URL", "JWT_SECRET", "TOKEN_ENCRYPTION_KEYS", "ADMIN_PASSWORD"];
	const secretTemplate = () => {
		const secrets = ofKind("Secret");
		expect(secrets).toHaveLength(1);
		expect(secrets[0].file).toBe("secret.example.yaml");
		return secrets[0];
	};
	const configMap = () => {
		const maps = ofKind("ConfigMap");
		expect(maps).toHaveLength(1);
		return must(maps[0].data, "ConfigMap data");
	};

	it("the Secret template holds only placeholders, as stringData", () => {
		const secret = secretTemplate();
		expect(secret.data).toBeUndefined(); // base64 data would hide what the values are
		const values = must(secret.stringData, "Secret stringData");
		for (const key of SECRET_KEYS) expect(Object.keys(values)).toContain(key);
		for (const [key, value] of Object.entries(values)) {
			expect({ key, placeholder: /change-?me|replace-?me|example|placeholder/i.test(value) }).toEqual({ key, placeholder: true });
		}
		// No 32-byte base64 key and no long random-looking token anywhere in the template.
		const raw = readFileSync(join(K8S_DIR, "secret.example.yaml"), "utf8");
		expect(raw).not.toMatch(/[A-Za-z0-9+/]{40,}={0,2}/);
		expect(raw).toMatch(/do not commit/i);
	});

	it("the template's placeholders are refused by the gateway, so it can never run on them", () => {
		const problems = configProblems({ ...configMap(), ...must(secretTemplate().stringData, "stringData"), SERVICES: ROLES.api.join(",") });
		expect(problems.some((p) => p.startsWith("JWT_SECRET"))).toBe(true);
		expect(problems.some((p) => p.startsWith("TOKEN_ENCRYPTION_KEYS"))).toBe(true);
	});

	it("the ConfigMap holds no secret", () => {
		const keys = Object.keys(configMap());
		for (const key of [...SECRET_KEYS, "METRICS_TOKEN"]) expect(keys).not.toContain(key);
		expect(keys).toEqual(expect.arrayContaining(["TRANSPORTER", "REDIS_URL", "LOG_LEVEL", "PUBLIC_URL", "NAMESPACE"]));
	});

	it("the ConfigMap's PUBLIC_URL is a placeholder a node refuses, left unedited", () => {
		const problems = configProblems({ ...configMap(), ...must(secretTemplate().stringData, "stringData"), ...validSecrets(), SERVICES: "api,auth,realtime" });
		expect(problems).toEqual([expect.stringMatching(/^PUBLIC_URL names .*, a domain reserved for examples/)]);
	});

	it.each(ROLE_NAMES)("%s: ConfigMap (its PUBLIC_URL edited) + Secret (with real secrets) + SERVICES is a valid cluster configuration", (role) => {
		const c = containerOf(role);
		const env: Record<string, string> = {
			...configMap(),
			PUBLIC_URL: "https://telegram-gateway.acme-corp.net",
			...must(secretTemplate().stringData, "stringData"),
			...validSecrets(),
			SERVICES: must(envOf(c, "SERVICES")?.value, "SERVICES"),
			NODE_ID: `gateway-${role}-7d9f-abcde`,
		};
		expect(configProblems(env)).toEqual([]);
		const config = loadConfig(env);
		expect(config.mode).toBe("cluster");
		expect(config.host).toBe("0.0.0.0");
		expect(config.port).toBe((c.ports ?? []).find((p) => p.name === "http")?.containerPort);
		if (role === "grpc") expect(config.grpcPort).toBe((c.ports ?? []).find((p) => p.name === "grpc")?.containerPort);
	});
});

describe("Dockerfile", () => {
	it("builds on node:20-bookworm-slim in two stages and ships only the runtime", () => {
		const all = dockerInstructions();
		const froms = all.filter((i) => i.op === "FROM").map((i) => i.args.split(" ")[0]);
		expect(froms.length).toBeGreaterThanOrEqual(2);
		for (const image of froms) expect(image).toBe("node:20-bookworm-slim");
		const runs = all.filter((i) => i.op === "RUN").map((i) => i.args).join("\n");
		expect(runs).toMatch(/python3/);
		expect(runs).toMatch(/g\+\+/);
		expect(runs).toMatch(/npm ci/);
		expect(runs).toMatch(/npm run build/);
		expect(runs).toMatch(/npm prune --omit=dev/);
		const copies = finalStage().filter((i) => i.op === "COPY").map((i) => i.args);
		for (const path of ["node_modules", "dist", "proto", "package.json"]) {
			expect(copies.some((args) => args.includes("--from=") && args.includes(`/app/${path}`))).toBe(true);
		}
	});

	it("runs node as the non-root node user in production mode, exposing 3000 and 50051", () => {
		const stage = finalStage();
		expectRunsNodeDirectly(imageCmd());
		expect(imageCmd()).toEqual(["node", "--max-semi-space-size=64", "--enable-source-maps", "dist/bin/gateway.js"]);
		expect(stage.filter((i) => i.op === "USER").pop()?.args).toBe("node");
		expect(stage.some((i) => i.op === "ENV" && /NODE_ENV[= ]production/.test(i.args))).toBe(true);
		const exposed = stage.filter((i) => i.op === "EXPOSE").flatMap((i) => i.args.split(" "));
		expect(exposed).toEqual(expect.arrayContaining(["3000", "50051"]));
		const healthcheck = must(stage.find((i) => i.op === "HEALTHCHECK"), "HEALTHCHECK");
		expect(healthcheck.args).toMatch(/CMD .*node.*fetch\(.*127\.0\.0\.1.*\/health/);
		expect(healthcheck.args).toMatch(/PORT/);
	});

	it("ships what `npm run cli|migrate|repl` run, so the documented operator commands work in the image (dist/, no sources)", () => {
		const scripts = (JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")) as { scripts: Record<string, string> }).scripts;
		// Where each COPY of the final stage lands, relative to WORKDIR /app.
		const shipped = finalStage()
			.filter((i) => i.op === "COPY")
			.map((i) => i.args.split(/\s+/).filter((arg) => !arg.startsWith("--")).pop()!.replace(/^\.\//, "").replace(/^\/app\//, ""));
		const build = JSON.parse(readFileSync(join(ROOT, "tsconfig.build.json"), "utf8")) as { include: string[] };
		for (const name of ["cli", "migrate", "repl"]) {
			const argv = scripts[name]!.split(/\s+/);
			expect(argv[0]).toBe("node");
			expect(argv).not.toContain("tsx"); // tsx runs sources, which the image leaves out
			const file = argv.find((arg) => /\.[cm]?[jt]s$/.test(arg))!;
			expect({ name, file, shipped: shipped.some((path) => file === path || file.startsWith(`${path}/`)) }).toEqual({ name, file, shipped: true });
			// What it runs there: the compiled dist/bin/<name>.js.
			expect(existsSync(join(ROOT, "bin", `${name}.ts`))).toBe(true);
			expect(build.include).toContain("bin/**/*.ts");
		}
	});

	it(".dockerignore keeps local state and build output out of the context", () => {
		const lines = readFileSync(join(ROOT, ".dockerignore"), "utf8")
			.split(/\r?\n/)
			.map((l) => l.trim().replace(/\/$/, ""));
		for (const entry of ["node_modules", "dist", "data", ".git", "coverage", "test/bench/reports"]) expect(lines).toContain(entry);
	});
});

describe("docker-compose.yml", () => {
	const ALL = [...COMPOSE_STORES, ...Object.keys(COMPOSE_GATEWAYS)];

	it("has the three stores and the four gateway nodes", () => {
		expect(Object.keys(composeServices).sort()).toEqual([...ALL].sort());
		expect(composeService("mysql").image).toBe("mysql:8.0");
		expect(composeService("nats").image).toMatch(/^nats:2\.10(\b|-)/);
		expect(composeService("redis").image).toBe("redis:7-alpine");
	});

	it("stores: MySQL with the gateway database in utf8mb4, NATS with JetStream, each with a healthcheck", () => {
		const mysql = composeService("mysql");
		expect(composeEnv(mysql).MYSQL_DATABASE).toBe("gateway");
		const mysqlCommand = effectiveCommand(mysql.command).join(" ");
		expect(mysqlCommand).toMatch(/--character-set-server=utf8mb4\b/);
		expect(mysqlCommand).toMatch(/--collation-server=utf8mb4_/);
		expect(effectiveCommand(composeService("nats").command)).toContain("-js");
		const checks: Record<string, RegExp> = { mysql: /mysqladmin ping/, nats: /8222\/healthz/, redis: /redis-cli ping/ };
		for (const [name, pattern] of Object.entries(checks)) {
			const test = must(composeService(name).healthcheck?.test, `${name} healthcheck`);
			expect([test].flat().join(" ")).toMatch(pattern);
		}
	});

	it("the gateway environment is shared through the x-gateway-env anchor", () => {
		const shared = must(compose["x-gateway-env"] as Record<string, string> | undefined, "x-gateway-env");
		for (const name of Object.keys(COMPOSE_GATEWAYS)) {
			expect(composeEnv(composeService(name))).toMatchObject(shared);
		}
	});

	it.each(Object.entries(COMPOSE_GATEWAYS))("%s: SERVICES matches its role (%s); NODE_ID is its own name, or left to its default where the service may be scaled", (name, role) => {
		const service = composeService(name);
		const env = composeEnv(service);
		expect(must(env.SERVICES, "SERVICES").split(",").map((s) => s.trim())).toEqual([...ROLES[role]]);
		// A service without host ports can be scaled (`--scale worker=2`): its replicas may not share a NODE_ID.
		expect(env.NODE_ID).toBe(service.ports ? name : undefined);
	});

	it.each(Object.keys(COMPOSE_GATEWAYS))("%s: waits for healthy stores, checks /ready, runs node, drains on stop", (name) => {
		const service = composeService(name);
		expect(service.build ?? service.image).toBeDefined();
		const dependsOn = service.depends_on;
		expect(Array.isArray(dependsOn)).toBe(false); // the list form cannot say service_healthy
		for (const store of COMPOSE_STORES) {
			expect((dependsOn as Record<string, { condition?: string }>)[store]?.condition).toBe("service_healthy");
		}
		expect(service.healthcheck?.disable).not.toBe(true);
		const test = [must(service.healthcheck?.test, `${name} healthcheck`)].flat().join(" ");
		expect(test).toMatch(/node .*fetch\(.*\/ready/);
		expectRunsNodeDirectly(effectiveCommand(service.command));
		expect(effectiveCommand(service.command)).toEqual(expect.arrayContaining(GATEWAY_NODE_FLAGS));
		expect(service.restart).toBe("unless-stopped");
		const grace = /^(\d+)s$/.exec(must(service.stop_grace_period, "stop_grace_period"));
		expect(Number(must(grace, "stop_grace_period in seconds")[1])).toBeGreaterThan(30);
	});

	it("publishes api-1 on 3000, api-2 on 3001 and grpc on 50051", () => {
		const published = (name: string) => (composeService(name).ports ?? []).map((p) => (typeof p === "string" ? p : `${p.published}:${p.target}`));
		expect(published("api-1")).toContain("3000:3000");
		expect(published("api-2")).toContain("3001:3000");
		expect(published("grpc")).toContain("50051:50051");
		expect(published("worker")).toEqual([]);
	});

	it.each(Object.keys(COMPOSE_GATEWAYS))("%s: JWT_SECRET and TOKEN_ENCRYPTION_KEYS are required variables (the :? syntax)", (name) => {
		const env = composeEnv(composeService(name));
		expect(env.JWT_SECRET).toMatch(/^\$\{JWT_SECRET:\?[^}]+\}$/);
		expect(env.TOKEN_ENCRYPTION_KEYS).toMatch(/^\$\{TOKEN_ENCRYPTION_KEYS:\?[^}]+\}$/);
		const vars = { ...validSecrets(), MYSQL_PASSWORD: "p4ssw0rd" };
		expect(() => interpolate(env.JWT_SECRET, { ...vars, JWT_SECRET: undefined })).toThrow(/JWT_SECRET/);
		expect(() => interpolate(env.TOKEN_ENCRYPTION_KEYS, { ...vars, TOKEN_ENCRYPTION_KEYS: "" })).toThrow(/TOKEN_ENCRYPTION_KEYS/);
	});

	it.each(Object.entries(COMPOSE_GATEWAYS))("%s: with secrets set, its environment is a valid %s cluster configuration", (name) => {
		const vars = { ...validSecrets(), MYSQL_PASSWORD: "0123456789abcdef", MYSQL_ROOT_PASSWORD: "fedcba9876543210" };
		const env = Object.fromEntries(Object.entries(composeEnv(composeService(name))).map(([k, v]) => [k, interpolate(v, vars)]));
		expect(configProblems(env)).toEqual([]);
		const config = loadConfig(env);
		expect(config.mode).toBe("cluster");
		expect(config.databaseUrl).toMatch(/^mysql:\/\/[^@]+@mysql:3306\/gateway$/);
		expect(config.transporter).toMatch(/^nats:\/\/nats:4222$/);
		expect(config.redisUrl).toMatch(/^redis:\/\/redis:6379$/);
	});

	it(".env.example names the required secrets, shows how to generate them, and its placeholders are refused", () => {
		const text = readFileSync(join(ROOT, ".env.example"), "utf8");
		expect(text).toMatch(/openssl rand -base64 32/);
		const values = Object.fromEntries(
			text
				.split(/\r?\n/)
				.filter((l) => /^[A-Z_][A-Z0-9_]*=/.test(l))
				.map((l) => [l.slice(0, l.indexOf("=")), l.slice(l.indexOf("=") + 1)]),
		);
		// Every variable compose requires (${VAR:?...}) has a line in .env.example.
		const required = [...readFileSync(COMPOSE_FILE, "utf8").matchAll(/\$\{([A-Z_][A-Z0-9_]*):\?/g)].map((m) => m[1]);
		expect(required).toEqual(expect.arrayContaining(["JWT_SECRET", "TOKEN_ENCRYPTION_KEYS"]));
		for (const name of required) expect(Object.keys(values)).toContain(name);
		const env = Object.fromEntries(Object.entries(composeEnv(composeService("worker"))).map(([k, v]) => [k, interpolate(v, values)]));
		const problems = configProblems(env);
		expect(problems.some((p) => p.startsWith("JWT_SECRET"))).toBe(true);
		expect(problems.some((p) => p.startsWith("TOKEN_ENCRYPTION_KEYS"))).toBe(true);
	});
});
