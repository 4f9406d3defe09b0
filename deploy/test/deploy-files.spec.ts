import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { cpSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { parseDocument } from 'yaml';
import { z } from 'zod';
import { loadConfig } from '#libs/config';
import { createTestEnvironment, freePort, type TestEnvironment } from '#libs/testing';
import {
  composeCrossProblems,
  composeSchemaProblems,
  isRunwayImage,
  kubernetesCrossProblems,
  kubernetesSchemaProblems,
  kubernetesSchemasInstalled,
  KUBERNETES_VERSIONS,
  natsConfigProblems,
  parseCompose,
  parseEnvFile,
  parseYaml,
  readKubernetesFiles,
  ROOT,
  type ResolvedProbe,
} from './checks.js';

const COMPOSE_DIR = join(ROOT, 'deploy', 'compose');
const composeText = readFileSync(join(COMPOSE_DIR, 'compose.yaml'), 'utf8');
const work = mkdtempSync(join(tmpdir(), 'runway-deploy-'));
after(() => rmSync(work, { recursive: true, force: true }));

/** GET on loopback without keep-alive (a process's idle connection may close under a pooled request). */
function httpGet(
  port: number,
  path: string,
  headers: Record<string, string> = {},
): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, headers, agent: false, timeout: 10_000 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`GET :${port}${path} timed out`)));
    req.on('error', reject);
    req.end();
  });
}

/** The text with `from` replaced once by `to` (the mutation must apply: a no-op proves nothing). */
function mutate(text: string, from: string | RegExp, to: string): string {
  const out = text.replace(from, to);
  assert.notEqual(out, text, `mutation ${String(from)} did not apply`);
  return out;
}

/** deploy/compose copied with make-secrets.sh run in it: the env files it makes, by compose path. */
function madeSecrets(): { dir: string; envFiles: Record<string, string> } {
  const dir = join(work, `compose-${Math.random().toString(36).slice(2)}`);
  cpSync(COMPOSE_DIR, dir, { recursive: true });
  const r = spawnSync('sh', [join(dir, 'make-secrets.sh')], { encoding: 'utf8', timeout: 20_000 });
  assert.equal(r.status, 0, r.stderr);
  const envFiles: Record<string, string> = {};
  for (const f of ['runway', 'worker', 'nats', 'postgres'])
    envFiles[`./secrets/${f}.env`] = readFileSync(join(dir, 'secrets', `${f}.env`), 'utf8');
  return { dir, envFiles };
}

describe('deploy/compose', () => {
  it('compose.yaml is valid against the Compose specification JSON schema', () => {
    assert.deepEqual(composeSchemaProblems(composeText), []);
  });

  it('the schema refuses a broken compose file', () => {
    for (const broken of [
      mutate(composeText, 'deploy: { replicas: 2 }', 'deploy: { replicas: two }'),
      mutate(composeText, 'interval: 10s', 'intervall: 10s'),
      mutate(composeText, 'restart: unless-stopped', 'restart: [unless-stopped]'),
      // A YAML slip: an unquoted `a ? b : c` in a list item is a mapping, not the command's string.
      mutate(composeText, /"(fetch\('http:\/\/127\.0\.0\.1:9090[^"]*)"/, '$1'),
    ])
      assert.notDeepEqual(composeSchemaProblems(broken), []);
  });

  it('has 3 NATS nodes, PostgreSQL, 2 gateways behind a load balancer, 2 schedulers, workers and every service', () => {
    const { services } = parseCompose(composeText);
    const replicas = (name: string) => services[name]?.deploy?.replicas ?? 1;
    const nats = Object.entries(services).filter(([, s]) => s.image?.startsWith('nats:'));
    assert.equal(nats.length, 3);
    for (const [, s] of nats) {
      const m = /^nats:(\d+)\.(\d+)/.exec(s.image ?? '');
      assert.ok(m && (Number(m[1]) > 2 || Number(m[2]) >= 12), `${s.image}: nats-server ≥ 2.12`);
    }
    assert.ok(services.postgres?.image?.startsWith('postgres:'));
    assert.equal(replicas('gateway'), 2);
    assert.equal(replicas('scheduling'), 2);
    assert.ok(replicas('worker') >= 2);
    const entries = Object.values(services)
      .filter((s) => isRunwayImage(s.image))
      .map((s) => s.command?.[0]);
    for (const svc of ['gateway', 'deployments', 'configurations', 'scheduling', 'execution', 'logs'])
      assert.ok(entries.includes(`dist/services/${svc}/src/main.js`), svc);
    assert.ok(entries.includes('dist/services/execution/src/worker-main.js'));
    assert.ok(services.lb?.depends_on?.gateway);
    const nginx = readFileSync(join(COMPOSE_DIR, 'nginx.conf'), 'utf8');
    assert.match(nginx, /server gateway:8080 resolve/);
    assert.match(nginx, /server gateway:50051 resolve/);
  });

  it("make-secrets.sh makes 0600 env files that every Runway container's configuration accepts", () => {
    const { dir, envFiles } = madeSecrets();
    for (const f of ['runway.env', 'worker.env', 'nats.env', 'postgres.env'])
      assert.equal(statSync(join(dir, 'secrets', f)).mode & 0o777, 0o600, f);
    assert.deepEqual(composeCrossProblems(composeText, envFiles), []);
    // The values too: libs/config validates each Runway container's whole environment.
    const { services } = parseCompose(composeText);
    for (const [name, s] of Object.entries(services)) {
      if (!isRunwayImage(s.image)) continue;
      const env: Record<string, string> = {};
      for (const f of s.env_file ?? []) Object.assign(env, parseEnvFile(envFiles[f] ?? ''));
      for (const [k, v] of Object.entries(s.environment ?? {})) env[k] = String(v);
      env.RUNWAY_PUBLIC_URL = 'http://localhost:8080';
      const config = loadConfig(env);
      assert.equal(config.nats.url?.split(',').length, 3, name);
      assert.equal(config.nats.auth?.kind, 'user', name);
      assert.ok(config.masterKey && config.database.url, name);
    }
    // Workers connect as the NATS user `worker`, the services as `runway`.
    assert.match(envFiles['./secrets/worker.env'] ?? '', /^NATS_USER=worker$/m);
    assert.match(envFiles['./secrets/runway.env'] ?? '', /^NATS_USER=runway$/m);
    // A second run never overwrites the secrets.
    assert.notEqual(spawnSync('sh', [join(dir, 'make-secrets.sh')]).status, 0);
  });

  it('the cross-checks refuse an unknown variable, a missing command and a wrong health route', () => {
    const { envFiles } = madeSecrets();
    for (const broken of [
      mutate(composeText, 'RUNWAY_LOG_LEVEL: log', 'RUNWAY_LOG_LEVLE: log'),
      mutate(composeText, 'dist/services/logs/src/main.js', 'dist/services/log/src/main.js'),
      mutate(composeText, "127.0.0.1:9090/healthz'", "127.0.0.1:9090/health'"),
      mutate(composeText, "127.0.0.1:8080/api/v1/ping'", "127.0.0.1:8081/api/v1/ping'"),
      mutate(composeText, 'nats-3: { condition: service_healthy }', 'nats-4: { condition: service_healthy }'),
    ])
      assert.notDeepEqual(composeCrossProblems(broken, envFiles), []);
    const noWorkerEnv = { ...envFiles };
    delete noWorkerEnv['./secrets/worker.env'];
    assert.notDeepEqual(composeCrossProblems(composeText, noWorkerEnv), []);
  });

  it('nats.conf is valid for nats-server and has the users and permissions of libs/nats', () => {
    const { dir, envFiles } = madeSecrets();
    const env: Record<string, string> = {
      ...parseEnvFile(envFiles['./secrets/nats.env'] ?? ''),
      NATS_SERVER_NAME: 'nats-1',
    };
    const conf = join(dir, 'nats.conf');
    assert.deepEqual(natsConfigProblems(conf, env), []);
    // Without a password variable, and with a permission the worker must not have.
    assert.ok(env.NATS_WORKER_PASSWORD);
    const missing = { ...env };
    delete missing.NATS_WORKER_PASSWORD;
    assert.notDeepEqual(natsConfigProblems(conf, missing), []);
    const text = readFileSync(conf, 'utf8');
    writeFileSync(conf, mutate(text, '"evt.*.run.*", "logs.>"', '"evt.>", "logs.>"'));
    assert.notDeepEqual(natsConfigProblems(conf, env), []);
    writeFileSync(conf, mutate(text, 'jetstream {', 'jetstream {{'));
    assert.notDeepEqual(natsConfigProblems(conf, env), []);
  });
});

describe('deploy/kubernetes', () => {
  const files = readKubernetesFiles();
  const runwayYaml = files['deploy/kubernetes/runway.yaml'] ?? '';

  it('the Kubernetes JSON schemas are installed (scripts/setup.mjs --deploy-schemas)', () => {
    assert.ok(kubernetesSchemasInstalled());
    assert.ok(Object.keys(files).length >= 4);
  });

  for (const version of KUBERNETES_VERSIONS) {
    it(`every manifest is valid against the strict Kubernetes ${version} schemas`, () => {
      for (const [file, text] of Object.entries(files))
        assert.deepEqual(kubernetesSchemaProblems(text, version, file), [], file);
    });
  }

  it('the schemas refuse a broken manifest', () => {
    const v = KUBERNETES_VERSIONS[KUBERNETES_VERSIONS.length - 1]!;
    for (const broken of [
      mutate(runwayYaml, 'readinessProbe:', 'readinesProbe:'), // a typo: strict schemas allow no unknown field
      mutate(runwayYaml, 'replicas: 2', "replicas: 'two'"),
      mutate(runwayYaml, 'apiVersion: apps/v1', 'apiVersion: apps/v1beta1'),
      mutate(runwayYaml, 'periodSeconds: 10', 'periodSeconds: ten'),
    ])
      assert.notDeepEqual(kubernetesSchemaProblems(broken, v, 'runway.yaml'), []);
  });

  it('names, variables, commands and probes refer to what exists', () => {
    const { problems, probes } = kubernetesCrossProblems(files);
    assert.deepEqual(problems, []);
    // Every Runway process of the compose file runs here too, each with HTTP probes.
    const entries = new Set(probes.map((p) => p.entry));
    for (const s of Object.values(parseCompose(composeText).services))
      if (isRunwayImage(s.image)) assert.ok(entries.has(s.command?.[0] ?? ''), s.command?.[0]);
    const doc = parseYaml(files['deploy/kubernetes/nats.yaml'] ?? '').docs;
    const sts = z
      .object({ kind: z.literal('StatefulSet'), spec: z.object({ replicas: z.number() }).loose() })
      .loose();
    assert.equal(doc.map((d) => sts.safeParse(d)).find((r) => r.success)?.data?.spec.replicas, 3);
  });

  it('the cross-checks refuse an unknown variable, a missing Secret, a missing command and a wrong probe', () => {
    const secrets = 'deploy/kubernetes/secrets/runway-secrets.example.yaml';
    for (const [file, broken] of [
      ['runway.yaml', mutate(runwayYaml, 'RUNWAY_LOG_LEVEL: log', 'RUNWAY_LOGLEVEL: log')],
      [
        'runway.yaml',
        mutate(runwayYaml, 'secretRef: { name: runway-worker }', 'secretRef: { name: runway-workers }'),
      ],
      ['runway.yaml', mutate(runwayYaml, 'dist/services/logs/src/main.js', 'dist/services/logs/main.js')],
      ['runway.yaml', mutate(runwayYaml, 'path: /api/v1/ping', 'path: /api/v1/health')],
      ['runway.yaml', mutate(runwayYaml, "RUNWAY_HEALTH_PORT: '9090'", "RUNWAY_HEALTH_PORT: '9091'")],
      [
        'runway.yaml',
        mutate(
          runwayYaml,
          'selector: { app.kubernetes.io/name: runway-gateway }',
          'selector: { app.kubernetes.io/name: gateway }',
        ),
      ],
      [secrets, mutate(files[secrets] ?? '', 'RUNWAY_MASTER_KEY: CHANGE-ME', 'RUNWAY_MASTERKEY: CHANGE-ME')],
    ] as const) {
      const key = file === secrets ? secrets : 'deploy/kubernetes/runway.yaml';
      assert.notDeepEqual(kubernetesCrossProblems({ ...files, [key]: broken }).problems, [], file);
    }
  });

  it("the NATS ConfigMap's nats.conf is valid for nats-server and has the users of libs/nats", () => {
    const objects = parseYaml(files['deploy/kubernetes/nats.yaml'] ?? '').docs;
    const cm = z
      .object({ kind: z.literal('ConfigMap'), data: z.object({ 'nats.conf': z.string() }) })
      .loose();
    const conf = objects.map((o) => cm.safeParse(o)).find((r) => r.success)?.data?.data['nats.conf'];
    assert.ok(conf);
    const file = join(work, 'k8s-nats.conf');
    writeFileSync(file, conf);
    const secret = parseDocument(files['deploy/kubernetes/secrets/runway-secrets.example.yaml'] ?? '').toJS();
    const passwords = z
      .object({ stringData: z.record(z.string(), z.string()) })
      .loose()
      .parse(secret);
    assert.deepEqual(natsConfigProblems(file, { ...passwords.stringData, SERVER_NAME: 'runway-nats-0' }), []);
  });
});

describe('the probes answer on the running processes', { timeout: 120_000 }, () => {
  let env: TestEnvironment;
  const children: ChildProcess[] = [];
  const ports = new Map<string, number>();
  const probes: ResolvedProbe[] = kubernetesCrossProblems(readKubernetesFiles()).probes;

  async function start(entry: string, extra: Record<string, string>, ready: () => Promise<boolean>) {
    const child = spawn(process.execPath, [join(ROOT, entry)], {
      env: {
        ...process.env,
        ...env.childEnv(),
        DATABASE_URL: env.databaseUrl,
        RUNWAY_DATA_DIR: join(work, `data-${children.length}`),
        RUNWAY_LOG_LEVEL: 'error',
        RUNWAY_HOST: '127.0.0.1',
        ...extra,
      },
      stdio: ['ignore', 'ignore', 'inherit'],
    });
    children.push(child);
    let exited: number | null | undefined;
    child.once('exit', (code) => (exited = code));
    const deadline = Date.now() + 60_000;
    while (!(await ready())) {
      assert.equal(exited, undefined, `${entry} exited with ${exited}`);
      assert.ok(Date.now() < deadline, `${entry} did not become ready`);
      await new Promise((r) => setTimeout(r, 200));
    }
  }
  const get = (port: number, path: string) =>
    httpGet(port, path).then(
      (r) => r.status,
      () => 0,
    );

  before(async () => {
    env = await createTestEnvironment();
    // The gateway, one standalone service (they all start through runStandaloneService), a worker.
    const specs: [string, Record<string, string>][] = [];
    const gw = { http: await freePort(), grpc: await freePort() };
    ports.set('dist/services/gateway/src/main.js', gw.http);
    specs.push([
      'dist/services/gateway/src/main.js',
      { RUNWAY_HTTP_PORT: String(gw.http), RUNWAY_GRPC_PORT: String(gw.grpc) },
    ]);
    for (const entry of ['dist/services/logs/src/main.js', 'dist/services/execution/src/worker-main.js']) {
      const port = await freePort();
      ports.set(entry, port);
      specs.push([entry, { RUNWAY_HEALTH_PORT: String(port) }]);
    }
    await Promise.all(
      specs.map(([entry, extra]) =>
        start(
          entry,
          extra,
          async () =>
            (await get(ports.get(entry)!, entry.includes('gateway') ? '/api/v1/ping' : '/healthz')) === 200,
        ),
      ),
    );
  });
  after(async () => {
    await Promise.all(
      children.map(
        (c) =>
          new Promise<void>((resolve) => {
            if (c.exitCode !== null || c.signalCode !== null) return resolve();
            c.once('exit', () => resolve());
            c.kill('SIGTERM');
            setTimeout(() => c.kill('SIGKILL'), 10_000).unref();
          }),
      ),
    );
    await env?.close();
  });

  it('first-admin.js prints a working token of the one first admin, on every run', async () => {
    const run = () =>
      spawnSync(process.execPath, [join(ROOT, 'dist/deploy/container/src/first-admin.js')], {
        encoding: 'utf8',
        timeout: 60_000,
        env: { ...process.env, ...env.childEnv(), DATABASE_URL: env.databaseUrl, RUNWAY_LOG_LEVEL: 'error' },
      });
    const gateway = ports.get('dist/services/gateway/src/main.js')!;
    const workspaces = async (token: string) => {
      const res = await httpGet(gateway, '/api/v1/workspaces', { authorization: `Bearer ${token}` });
      assert.equal(res.status, 200, 'the printed token works');
      return z.array(z.object({ id: z.string(), name: z.string() }).loose()).parse(JSON.parse(res.body));
    };
    const first = run();
    assert.equal(first.status, 0, first.stderr);
    const second = run();
    assert.equal(second.status, 0, second.stderr);
    const [a, b] = [first.stdout.trim(), second.stdout.trim()];
    assert.match(a, /^\S{20,}$/);
    assert.notEqual(a, b);
    const [wa, wb] = [await workspaces(a), await workspaces(b)];
    assert.deepEqual(
      wa.map((w) => w.name),
      ['default'],
    );
    assert.deepEqual(wb, wa); // the same admin, the same default workspace: nothing made twice
    const anonymous = await httpGet(gateway, '/api/v1/workspaces');
    assert.equal(anonymous.status, 401);
  });

  it('every probe of the manifests gets 200 from the process it checks, and another path does not', async () => {
    assert.ok(probes.length >= 21);
    let asked = 0;
    for (const p of probes) {
      // The standalone services share one start (runStandaloneService): asked on the logs service.
      const entry = ports.has(p.entry) ? p.entry : 'dist/services/logs/src/main.js';
      if (!ports.has(p.entry))
        assert.match(readFileSync(join(ROOT, p.entry), 'utf8'), /runStandaloneService\(/, p.entry);
      assert.equal(
        await get(ports.get(entry)!, p.path),
        200,
        `${p.workload}/${p.container} ${p.kind} ${p.path}`,
      );
      asked++;
    }
    assert.equal(asked, probes.length);
    for (const port of ports.values()) assert.equal(await get(port, '/healthz/nothing'), 404);
  });
});
