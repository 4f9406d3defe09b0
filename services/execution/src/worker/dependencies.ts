import { createHash, randomBytes } from 'node:crypto';
import {
  existsSync,
  lstatSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  utimesSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse as parseToml } from 'smol-toml';
import { z } from 'zod';
import { sleep, type RunExecutor } from '../executor/index.js';
import { FORWARDER, IndexProxy, indexHosts } from './index-proxy.js';
import { isLive } from './process-group.js';

/**
 * A deployment's own Python dependencies (docs/dependencies.md): what it declares, and the
 * environments uv builds for them, cached per workspace by the hash of the requirement set.
 */

export type DependencySource = 'uv.lock' | 'pyproject.toml' | 'requirements.txt' | 'requirements.json';

/** What a deployment declares: the files the install step gets (only these, never the run's directory). */
export interface DependencyDeclaration {
  source: DependencySource;
  /** Name → content, written into the install step's own directory. */
  files: Readonly<Record<string, string>>;
}

/** The `requirements.json` the dlt clients upload beside the tarball (engine 1: dlt-runtime 0.26.1; engine 2: dlthub). */
export const requirementsJsonSchema = z.object({
  engine_version: z.number().int().min(1).max(2),
  python_version: z.string().nullish(),
  dlt_version: z
    .object({
      name: z.string().min(1),
      extras: z.array(z.string()).nullish(),
      version: z.string().nullish(),
      mode: z.string().nullish(),
    })
    .nullish(),
  default_groups: z.array(z.string()).default(['main']),
  groups: z.record(z.string(), z.array(z.string())).default({}),
  launcher_requirements: z.record(z.string(), z.array(z.string())).nullish(),
});

const pyprojectSchema = z.object({
  project: z.object({ dependencies: z.array(z.string()).default([]) }).optional(),
});

/** Lines that declare something (not blank, not comments). */
function meaningful(text: string): string[] {
  return text
    .split(/\r?\n/)
    .map((l) => l.replace(/(^|\s)#.*$/, '').trim())
    .filter(Boolean);
}

function fileOf(dir: string, name: string): string | undefined {
  const p = join(dir, name);
  try {
    return statSync(p).isFile() ? readFileSync(p, 'utf8') : undefined;
  } catch {
    return undefined;
  }
}

/** What a job adds to a requirements.json's selection (manifest jobs: their launch). */
export interface JobRequirements {
  /** The launcher module (`dlt._workspace.deployment.launchers.marimo`): its `launcher_requirements`. */
  launcher?: string;
  /** `require.dependency_groups`: groups installed on top of `default_groups`. */
  dependencyGroups?: readonly string[];
}

/** dlt's workspace dashboard job's group (`DASHBOARD_JOB_REF`): dlt writes it into every requirements.json. */
export const DASHBOARD_GROUP = 'jobs.workspace.dashboard';

export type RequirementsJson = z.infer<typeof requirementsJsonSchema>;

export function parseRequirementsJson(raw: string): RequirementsJson {
  let json: unknown;
  try {
    json = JSON.parse(raw);
  } catch (err) {
    throw new Error(`requirements.json is not JSON: ${err instanceof Error ? err.message : String(err)}`, {
      cause: err,
    });
  }
  const parsed = requirementsJsonSchema.safeParse(json);
  if (!parsed.success)
    throw new Error(
      `requirements.json: ${parsed.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`).join('; ')}`,
    );
  return parsed.data;
}

/**
 * The requirement lines a job of a deployment gets from its requirements.json, by dlt 1.26's rule
 * (`dlt/_workspace/deployment/typing.py`): the groups `default_groups` + the job's
 * `require.dependency_groups`, then `launcher_requirements[launcher]` (mandatory for jobs of that
 * launcher; they carry dlt unless a default group names it). Empty (the configured interpreter, no
 * install) when the selected groups declare nothing of the workspace's own: every requirements.json
 * has launcher specs and the dashboard's group, which the configured interpreter provides.
 * A job's group missing from `groups` is an error (dlt's runtime cannot install it either).
 */
export function selectRequirements(r: RequirementsJson, job: JobRequirements = {}): string[] {
  const names = [...new Set([...r.default_groups, ...(job.dependencyGroups ?? [])])];
  const missing = (job.dependencyGroups ?? []).filter((g) => !(g in r.groups));
  if (missing.length > 0)
    throw new Error(
      `requirements.json has no dependency group ${missing.map((g) => JSON.stringify(g)).join(', ')} (require.dependency_groups of the job; groups: ${Object.keys(r.groups).join(', ') || 'none'})`,
    );
  const own = names.filter((g) => g !== DASHBOARD_GROUP).flatMap((g) => r.groups[g] ?? []);
  if (own.every((l) => !l.trim())) return [];
  const out = names.flatMap((g) => r.groups[g] ?? []);
  if (job.launcher) out.push(...(r.launcher_requirements?.[job.launcher] ?? []));
  const dlt = r.dlt_version;
  const listsDlt = out.some((l) => /^dlt(\[|[\s=<>!~;@]|$)/i.test(l.trim()));
  if (dlt && !listsDlt && dlt.version && (dlt.mode ?? 'pypi') === 'pypi') {
    const extras = dlt.extras?.length ? `[${dlt.extras.join(',')}]` : '';
    out.push(`${dlt.name}${extras}==${dlt.version}`);
  }
  return [...new Set(out.map((l) => l.trim()).filter(Boolean))];
}

/** The requirement lines of a requirements.json for `job` (selectRequirements). */
export function requirementsFromJson(raw: string, job: JobRequirements = {}): string[] {
  return selectRequirements(parseRequirementsJson(raw), job);
}

/**
 * What the run's files (and the client's requirements.json, stored with the deployment) declare,
 * first found: pyproject.toml + uv.lock, pyproject.toml's `[project] dependencies`,
 * requirements.txt, requirements.json. Undefined = nothing declared (the configured interpreter).
 */
export function findDeclaration(
  runDir: string,
  requirementsJson: string | undefined,
  job: JobRequirements = {},
): DependencyDeclaration | undefined {
  const pyproject = fileOf(runDir, 'pyproject.toml');
  const lock = fileOf(runDir, 'uv.lock');
  if (pyproject !== undefined && lock !== undefined)
    return { source: 'uv.lock', files: { 'pyproject.toml': pyproject, 'uv.lock': lock } };
  if (pyproject !== undefined) {
    let toml: unknown;
    try {
      toml = parseToml(pyproject);
    } catch (err) {
      throw new Error(`pyproject.toml: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
    }
    const p = pyprojectSchema.safeParse(toml);
    if (!p.success) throw new Error(`pyproject.toml: [project] dependencies must be a list of strings`);
    const deps = p.data.project?.dependencies ?? [];
    if (deps.length > 0)
      return { source: 'pyproject.toml', files: { 'requirements.txt': `${deps.join('\n')}\n` } };
  }
  const txt = fileOf(runDir, 'requirements.txt');
  if (txt !== undefined && meaningful(txt).length > 0)
    return { source: 'requirements.txt', files: { 'requirements.txt': txt } };
  return requirementsJson !== undefined ? declarationFromJson(requirementsJson, job) : undefined;
}

/** What a requirements.json declares for `job` (selectRequirements); undefined = nothing. */
export function declarationFromJson(
  raw: string,
  job: JobRequirements = {},
): DependencyDeclaration | undefined {
  const lines = requirementsFromJson(raw, job);
  return lines.length > 0
    ? { source: 'requirements.json', files: { 'requirements.txt': `${lines.join('\n')}\n` } }
    : undefined;
}

/** What an environment is keyed by besides the declaration. */
export interface EnvironmentBase {
  pythonVersion: string;
  python: string;
  uvVersion: string;
  indexUrl: string | undefined;
}

/** The cache key: the declaration's files + python + platform + index + uv. */
export function environmentKey(decl: DependencyDeclaration, base: EnvironmentBase): string {
  const h = createHash('sha256');
  h.update(
    JSON.stringify({
      v: 1,
      source: decl.source,
      files: Object.entries(decl.files).sort(([a], [b]) => a.localeCompare(b)),
      python: base.pythonVersion,
      exe: base.python,
      platform: `${process.platform}-${process.arch}`,
      index: base.indexUrl ?? null,
      uv: base.uvVersion,
    }),
  );
  return h.digest('hex');
}

export interface EnvironmentOptions {
  dataDir: string;
  uv: string;
  python: string;
  /** What the install step may read besides the system (the interpreter's installation, uv). */
  toolPaths: readonly string[];
  executor: RunExecutor;
  /** The worker's variables the install step inherits (PATH, proxies, certificates). */
  baseEnv: Readonly<Record<string, string>>;
  /** RUNWAY_PIP_INDEX_URL / UV_INDEX_URL. */
  indexUrl: string | undefined;
  /** Environments kept on this host (all workspaces), least recently used removed first. */
  maxEnvironments: number;
  /** Bytes of environments kept on this host; 0 = no cap. */
  maxBytes: number;
  /** Longest an install may take. */
  buildTimeoutMs: number;
  /**
   * `index` (default): under the sandbox the install step has no network but a proxy to the index's
   * hosts (index-proxy.ts); `host`: the host's network, like runs.
   */
  network?: 'index' | 'host';
  /** Hosts the install step may reach besides the index's (RUNWAY_DEPS_ALLOWED_HOSTS). */
  extraHosts?: readonly string[];
}

export type SetupResult =
  | {
      ok: true;
      key: string;
      envDir: string;
      python: string;
      /** The environment existed (built by an earlier run, or by a concurrent one this run waited for). */
      cacheHit: boolean;
      durationMs: number;
      release: () => void;
    }
  | { ok: false; key: string; message: string; tail: string[]; durationMs: number };

interface EnvMarker {
  key: string;
  source: DependencySource;
  createdAt: string;
  bytes: number;
}
const markerSchema = z.object({
  key: z.string(),
  source: z.string(),
  createdAt: z.string(),
  bytes: z.number().int().nonnegative(),
});

const MARKER = '.runway-env.json';

/** Builds in progress in this process, by environment directory: a concurrent run waits for it. */
const building = new Map<string, Promise<SetupResult>>();
/** Runs of this process using an environment (never garbage-collected while > 0). */
const inUse = new Map<string, number>();

function dirBytes(p: string): number {
  let st;
  try {
    st = lstatSync(p);
  } catch {
    return 0;
  }
  if (!st.isDirectory()) return st.size;
  let n = 0;
  for (const name of readdirSync(p)) n += dirBytes(join(p, name));
  return n;
}

/** A unix socket path (at most 107 bytes): under the data dir, else the temp dir. */
function proxySocketPath(root: string): string {
  const name = `${randomBytes(6).toString('hex')}.sock`;
  const p = join(root, 'proxy', name);
  return Buffer.byteLength(p) <= 100 ? p : join(tmpdir(), `runway-proxy-${name}`);
}

/** Port of the in-sandbox forwarder to the index proxy (its own network namespace: any port is free). */
const PROXY_PORT = 3128;

/**
 * The install step: (the forwarder to the index proxy), uv venv, (uv export from the lock),
 * uv pip install; arguments as $1… (no quoting).
 */
const BUILD_SCRIPT = [
  'set -e',
  'uv="$1"; py="$2"; env="$3"; mode="$4"; sock="$5"; fwd="$6"',
  'if [ -n "$sock" ]; then',
  `  "$py" -I -c "$fwd" "$sock" ${PROXY_PORT} > .forwarder &`,
  '  i=0; until [ -s .forwarder ]; do i=$((i+1)); [ $i -gt 400 ] && { echo "the proxy forwarder did not start"; exit 1; }; sleep 0.05; done',
  'fi',
  'echo "uv venv --python $py"',
  '"$uv" venv --quiet --allow-existing --python "$py" "$env"',
  'if [ "$mode" = lock ]; then',
  '  echo "uv export --frozen (uv.lock)"',
  '  "$uv" export --quiet --frozen --no-dev --no-emit-workspace --no-hashes --no-header --no-annotate --format requirements-txt -o requirements.txt',
  'fi',
  'echo "uv pip install -r requirements.txt"',
  '"$uv" pip install --python "$env/bin/python" -r requirements.txt',
].join('\n');

/**
 * The environments of one host: `<dataDir>/deps/<workspace>/envs/<key>/`, a virtualenv plus a
 * marker written last (no marker = not built, never used). Built inside the run sandbox as the
 * workspace's identity, seen read-only by runs.
 */
export class DependencyEnvironments {
  private uvVersionCache: string | undefined;

  constructor(
    private readonly opts: EnvironmentOptions,
    private readonly pythonVersion: string,
  ) {}

  get root(): string {
    return join(this.opts.dataDir, 'deps');
  }

  private uvVersion(): string {
    if (this.uvVersionCache === undefined) {
      // The binary's identity (its size and mtime) stands in for `uv --version`: no process to start.
      try {
        const st = statSync(this.opts.uv);
        this.uvVersionCache = `${st.size}:${st.mtimeMs}`;
      } catch {
        this.uvVersionCache = 'unknown';
      }
    }
    return this.uvVersionCache;
  }

  keyOf(decl: DependencyDeclaration): string {
    return environmentKey(decl, {
      pythonVersion: this.pythonVersion,
      python: this.opts.python,
      uvVersion: this.uvVersion(),
      indexUrl: this.opts.indexUrl,
    });
  }

  /**
   * The environment for `decl` in workspace `ws`: reused when built, else built once (runs of this
   * process wait for one build; other processes on the host wait on the lock directory).
   */
  async ensure(
    ws: string,
    runId: string,
    decl: DependencyDeclaration,
    log: (line: string) => void,
  ): Promise<SetupResult> {
    const started = Date.now();
    const key = this.keyOf(decl);
    const envs = join(this.root, ws, 'envs');
    const envDir = join(envs, key);
    const hit = (cacheHit: boolean): SetupResult => {
      inUse.set(envDir, (inUse.get(envDir) ?? 0) + 1);
      const now = new Date();
      try {
        utimesSync(join(envDir, MARKER), now, now); // last use, for the LRU
      } catch {
        /* removed meanwhile: still usable by this run's bind mount */
      }
      let released = false;
      return {
        ok: true,
        key,
        envDir,
        python: join(envDir, 'bin', 'python'),
        cacheHit,
        durationMs: Date.now() - started,
        release: () => {
          if (released) return;
          released = true;
          const n = (inUse.get(envDir) ?? 1) - 1;
          if (n > 0) inUse.set(envDir, n);
          else inUse.delete(envDir);
        },
      };
    };
    if (existsSync(join(envDir, MARKER))) return hit(true);
    const pending = building.get(envDir);
    if (pending) {
      log(`waiting for the environment ${key.slice(0, 12)} that another run is building`);
      const r = await pending;
      return r.ok ? hit(true) : { ...r, durationMs: Date.now() - started };
    }
    const build = this.buildLocked(ws, runId, decl, key, envs, envDir, log, started);
    building.set(envDir, build);
    try {
      const r = await build;
      if (!r.ok) return r;
      return hit(r.cacheHit);
    } finally {
      building.delete(envDir);
    }
  }

  private async buildLocked(
    ws: string,
    runId: string,
    decl: DependencyDeclaration,
    key: string,
    envs: string,
    envDir: string,
    log: (line: string) => void,
    started: number,
  ): Promise<SetupResult> {
    mkdirSync(envs, { recursive: true, mode: 0o755 });
    const unlock = await this.lock(`${envDir}.lock`, started + this.opts.buildTimeoutMs, log, key);
    try {
      if (existsSync(join(envDir, MARKER)))
        return { ok: true, key, envDir, python: '', cacheHit: true, durationMs: 0, release: () => undefined };
      const r = await this.build(ws, runId, decl, key, envDir, log);
      if (r.ok) this.collectGarbage(log);
      return r;
    } finally {
      unlock();
    }
  }

  private async build(
    ws: string,
    runId: string,
    decl: DependencyDeclaration,
    key: string,
    envDir: string,
    log: (line: string) => void,
  ): Promise<SetupResult> {
    const started = Date.now();
    const wsRoot = join(this.root, ws);
    const setupDir = join(wsRoot, 'setup', runId);
    const cacheDir = join(wsRoot, 'uv-cache');
    rmSync(envDir, { recursive: true, force: true });
    rmSync(setupDir, { recursive: true, force: true });
    for (const d of [envDir, setupDir, cacheDir]) mkdirSync(d, { recursive: true, mode: 0o755 });
    for (const [name, content] of Object.entries(decl.files))
      writeFileSync(join(setupDir, name), content, { mode: 0o644 });
    const { executor } = this.opts;
    executor.grant(ws, [envDir, setupDir, cacheDir]);
    const env: Record<string, string> = {
      ...this.opts.baseEnv,
      HOME: setupDir,
      UV_CACHE_DIR: cacheDir,
      UV_PYTHON_DOWNLOADS: 'never',
      UV_NO_CONFIG: '1',
      UV_LINK_MODE: 'copy',
      UV_NO_PROGRESS: '1',
      NO_COLOR: '1',
    };
    if (this.opts.indexUrl) env.UV_INDEX_URL = this.opts.indexUrl;
    // Network: only the index, through a proxy on a unix socket (the sandbox has no other way out).
    let proxy: IndexProxy | undefined;
    const restricted = (this.opts.network ?? 'index') === 'index' && executor.name === 'local-sandbox';
    if (restricted) {
      const hosts = indexHosts(this.opts.indexUrl, this.opts.extraHosts);
      mkdirSync(join(this.root, 'proxy'), { recursive: true, mode: 0o755 });
      proxy = await IndexProxy.start(proxySocketPath(this.root), hosts, (what) =>
        log(`refused a connection to ${what}: not the package index`),
      );
      for (const k of ['NO_PROXY', 'no_proxy', 'ALL_PROXY', 'all_proxy']) delete env[k];
      const url = `http://127.0.0.1:${PROXY_PORT}`;
      Object.assign(env, { HTTPS_PROXY: url, HTTP_PROXY: url, https_proxy: url, http_proxy: url });
      log(`network: the package index only (${hosts.join(', ')})`);
    }
    log(`building environment ${key.slice(0, 12)} from ${decl.source} with uv`);
    const tail: string[] = [];
    let proc;
    try {
      proc = executor.spawn({
        argv: [
          '/bin/sh',
          '-c',
          BUILD_SCRIPT,
          'setup',
          this.opts.uv,
          this.opts.python,
          envDir,
          decl.source === 'uv.lock' ? 'lock' : 'txt',
          proxy?.socketPath ?? '',
          proxy ? FORWARDER : '',
        ],
        env,
        cwd: setupDir,
        workspaceId: ws,
        writable: [envDir, setupDir, cacheDir],
        readable: proxy ? [...this.opts.toolPaths, proxy.socketPath] : this.opts.toolPaths,
        network: restricted ? 'none' : 'host',
      });
    } catch (err) {
      await proxy?.stop();
      rmSync(envDir, { recursive: true, force: true });
      rmSync(setupDir, { recursive: true, force: true });
      const message = err instanceof Error ? err.message : String(err);
      return { ok: false, key, message, tail: [], durationMs: Date.now() - started };
    }
    const lines = (stream: NodeJS.ReadableStream) => {
      let pending = '';
      stream.on('data', (c: Buffer) => {
        pending += c.toString('utf8');
        let i;
        while ((i = pending.indexOf('\n')) >= 0) {
          const line = pending.slice(0, i).replace(/\r$/, '');
          pending = pending.slice(i + 1);
          log(line);
          tail.push(line);
          if (tail.length > 40) tail.shift();
        }
      });
      stream.on('end', () => {
        if (pending) {
          log(pending);
          tail.push(pending);
        }
      });
    };
    lines(proc.stdout);
    lines(proc.stderr);
    const timer = setTimeout(() => proc.signal('SIGKILL'), this.opts.buildTimeoutMs);
    const exit = await proc.exited;
    clearTimeout(timer);
    if (proc.alive()) proc.signal('SIGKILL');
    await Promise.race([proc.closed, sleep(2_000)]);
    await proxy?.stop();
    rmSync(setupDir, { recursive: true, force: true });
    if (exit.code !== 0) {
      rmSync(envDir, { recursive: true, force: true }); // a failed build is never reused
      const what = exit.signal ? `killed by ${exit.signal}` : `exit code ${exit.code}`;
      const errors = tail.filter((l) => l.trim() && !/^uv (venv|export|pip install)/.test(l));
      return {
        ok: false,
        key,
        message: `uv failed (${what}): ${errors.slice(-6).join(' ').replace(/\s+/g, ' ').trim().slice(0, 1500)}`,
        tail: errors.slice(-20),
        durationMs: Date.now() - started,
      };
    }
    const marker: EnvMarker = {
      key,
      source: decl.source,
      createdAt: new Date().toISOString(),
      bytes: dirBytes(envDir),
    };
    // Written by the worker, last: an environment without it was never completed.
    writeFileSync(join(envDir, MARKER), JSON.stringify(marker), { mode: 0o644 });
    return {
      ok: true,
      key,
      envDir,
      python: '',
      cacheHit: false,
      durationMs: Date.now() - started,
      release: () => undefined,
    };
  }

  /** A lock directory holding its owner's pid; a dead owner's lock is taken over. */
  private async lock(
    dir: string,
    deadline: number,
    log: (line: string) => void,
    key: string,
  ): Promise<() => void> {
    let told = false;
    for (;;) {
      try {
        mkdirSync(dir);
        writeFileSync(join(dir, 'owner'), String(process.pid));
        return () => rmSync(dir, { recursive: true, force: true });
      } catch (err) {
        if (!(err instanceof Error && 'code' in err && err.code === 'EEXIST')) throw err;
      }
      let owner = 0;
      try {
        owner = Number(readFileSync(join(dir, 'owner'), 'utf8')) || 0;
      } catch {
        /* being created */
      }
      const age = (() => {
        try {
          return Date.now() - statSync(dir).mtimeMs;
        } catch {
          return 0;
        }
      })();
      if ((owner && !isLive(owner)) || (!owner && age > 30_000)) {
        rmSync(dir, { recursive: true, force: true });
        continue;
      }
      if (!told) {
        log(`waiting for the environment ${key.slice(0, 12)} that another worker is building`);
        told = true;
      }
      if (Date.now() > deadline) throw new Error(`timed out waiting for the lock of environment ${key}`);
      await sleep(200);
    }
  }

  /**
   * Keeps at most `maxEnvironments` environments and `maxBytes` bytes on this host: the least
   * recently used go first; one in use by a run of this process, or being built, stays.
   */
  collectGarbage(log: (line: string) => void = () => undefined): void {
    const found: { dir: string; lastUsed: number; bytes: number }[] = [];
    let workspaces: string[];
    try {
      workspaces = readdirSync(this.root);
    } catch {
      return;
    }
    for (const ws of workspaces) {
      const envs = join(this.root, ws, 'envs');
      let names: string[];
      try {
        names = readdirSync(envs);
      } catch {
        continue;
      }
      for (const name of names) {
        if (!/^[0-9a-f]{64}$/.test(name)) continue;
        const dir = join(envs, name);
        if (existsSync(`${dir}.lock`) || building.has(dir)) continue;
        try {
          const m = markerSchema.parse(JSON.parse(readFileSync(join(dir, MARKER), 'utf8')));
          found.push({ dir, lastUsed: statSync(join(dir, MARKER)).mtimeMs, bytes: m.bytes });
        } catch {
          rmSync(dir, { recursive: true, force: true }); // an unfinished build nobody is doing
        }
      }
    }
    found.sort((a, b) => a.lastUsed - b.lastUsed);
    let count = found.length;
    let bytes = found.reduce((n, e) => n + e.bytes, 0);
    const { maxEnvironments, maxBytes } = this.opts;
    for (const e of found) {
      if (count <= maxEnvironments && (maxBytes <= 0 || bytes <= maxBytes)) break;
      if ((inUse.get(e.dir) ?? 0) > 0) continue;
      rmSync(join(e.dir, MARKER), { force: true });
      rmSync(e.dir, { recursive: true, force: true });
      count--;
      bytes -= e.bytes;
      log(`removed the least recently used environment ${e.dir.slice(-64, -52)} (cache cap)`);
    }
  }
}
