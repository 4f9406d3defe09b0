import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { livePidsWithArg } from '#libs/testing';
import { startTestStack, type TestStack } from '../support/stack.js';
import { newUser, uploadPackage, waitForStatus, type Json } from '../jobs/support.js';

const SECRET = 'victim-secret-value-7f3a9c';

/** What a hostile pipeline tries: every LEAK line is a hole; every OK line is a door that held. */
function probeScript(o: {
  dataDir: string;
  victimRunDir: string;
  victimWorkspaceDir: string;
  victimRunId: string;
  victimWorkspaceId: string;
  nats: { host: string; port: number };
  pg: { host: string; port: number };
}): string {
  return String.raw`
import os, socket, struct, glob
def leak(what): print("LEAK", what, flush=True)
def ok(what): print("OK", what, flush=True)
data = ${JSON.stringify(o.dataDir)}
for name in ["master.key", "jwt.key", "admin-token", "instance.json", "nats/credentials/runway", "nats/credentials/worker", "nats/nats-server.conf"]:
    p = os.path.join(data, name)
    try:
        open(p, "rb").read(); leak("read " + p)
    except Exception as e:
        ok("read %s: %s" % (p, type(e).__name__))
forbidden = {"master.key", "jwt.key", "admin-token", "instance.json", "nats", "pg", ${JSON.stringify(o.victimRunId)}, ${JSON.stringify(o.victimWorkspaceId)}, "victim.py"}
for d in [data, os.path.join(data, "work"), ${JSON.stringify(o.victimRunDir)}, ${JSON.stringify(o.victimWorkspaceDir)}]:
    try:
        # Only the skeleton of the run's own paths may show (bubblewrap's empty mount points).
        seen = set(os.listdir(d)) & forbidden
        (leak if seen else ok)("list %s: %s" % (d, sorted(seen)))
    except Exception as e:
        ok("list %s: %s" % (d, type(e).__name__))
try:
    open(os.path.join(${JSON.stringify(o.victimRunDir)}, ".dlt", "prod.secrets.toml")).read(); leak("victim secrets")
except Exception as e:
    ok("victim secrets: " + type(e).__name__)
for k in ["NATS_URL", "NATS_USER", "NATS_PASSWORD", "DATABASE_URL", "RUNWAY_MASTER_KEY", "RUNWAY_TOKEN"]:
    (leak if k in os.environ else ok)("env " + k)
pids = [p for p in os.listdir("/proc") if p.isdigit()]
ok("sees %d processes" % len(pids)) if len(pids) <= 8 else leak("sees %d processes" % len(pids))
for pid in pids + [str(os.getppid())]:
    try:
        env = open("/proc/%s/environ" % pid, "rb").read()
        (leak if (b"NATS" in env or b"DATABASE_URL" in env or b"RUNWAY_MASTER" in env) else ok)("environ of " + pid)
    except Exception as e:
        ok("environ of %s: %s" % (pid, type(e).__name__))
if os.getuid() == 0: leak("runs as root")
else: ok("uid %d" % os.getuid())
def nats(user, password):
    s = socket.create_connection((${JSON.stringify(o.nats.host)}, ${o.nats.port}), timeout=5)
    s.recv(4096)
    auth = '' if user is None else ',"user":"%s","pass":"%s"' % (user, password)
    s.sendall(('CONNECT {"verbose":false,"pedantic":false%s}\r\nPUB evt.x.workspace.y 2\r\nhi\r\nPING\r\n' % auth).encode())
    out = b""
    try:
        while b"PONG" not in out and b"-ERR" not in out:
            chunk = s.recv(4096)
            if not chunk: break
            out += chunk
    except Exception:
        pass
    return out
for user, password in [(None, None), ("runway", "runway"), ("admin", "admin"), ("worker", "worker")]:
    out = nats(user, password)
    (ok if b"-ERR" in out and b"PONG" not in out else leak)("nats as %s: %r" % (user, out[:80]))
for user in ["postgres", "runway"]:
    s = socket.create_connection((${JSON.stringify(o.pg.host)}, ${o.pg.port}), timeout=5)
    body = struct.pack("!I", 196608) + b"user\0" + user.encode() + b"\0database\0postgres\0\0"
    s.sendall(struct.pack("!I", len(body) + 4) + body)
    r = s.recv(64)
    code = struct.unpack("!I", r[5:9])[0] if r[:1] == b"R" else -1
    (leak if code == 0 else ok)("postgres as %s without a password: auth request %d" % (user, code))
print("probe done", flush=True)
`;
}

const DAEMON = String.raw`
import os, sys, time
tok = "daemon-" + os.environ["RUNTIME__RUN_ID"]
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        os.execv(sys.executable, [sys.executable, "-c", "import time; time.sleep(600)", tok])
    os._exit(0)
print("daemon started", flush=True)
`;

describe('the run sandbox: a hostile pipeline finds nothing, and nothing it starts outlives it', () => {
  let s: TestStack;
  let attacker: { token: string; workspaceId: string };

  const run = async (ws: string, name: string, token?: string) => {
    const r = await s.call(
      'POST',
      `/api/v1/workspaces/${ws}/runs`,
      { script_id_or_name_or_secret: name, profile: null },
      token,
    );
    assert.equal(r.status, 201, r.text);
    return (r.json as Json).id as string;
  };
  const job = async (ws: string, name: string, token?: string, extra: Json = {}) => {
    const r = await s.call(
      'POST',
      `/api/v1/workspaces/${ws}/scripts`,
      {
        name,
        description: '',
        entry_point: name,
        script_type: 'batch',
        active: true,
        profile: null,
        schedule: null,
        ...extra,
      },
      token,
    );
    assert.ok(r.status === 200 || r.status === 201, r.text);
  };
  const logs = async (ws: string, id: string, token?: string) =>
    (
      (await s.call('GET', `/api/v1/workspaces/${ws}/runs/${id}/logs`, undefined, token)).json as {
        logs: string | null;
      }
    ).logs ?? '';
  const waitDaemon = async (id: string) => {
    for (const until = Date.now() + 20_000; Date.now() < until;) {
      if (livePidsWithArg(`daemon-${id}`).length > 0) return;
      await new Promise((r) => setTimeout(r, 50));
    }
    assert.fail('the daemon never started');
  };
  const waitNoDaemon = async (id: string) => {
    for (const until = Date.now() + 5_000; Date.now() < until;) {
      if (livePidsWithArg(`daemon-${id}`).length === 0) return;
      await new Promise((r) => setTimeout(r, 50));
    }
    assert.deepEqual(livePidsWithArg(`daemon-${id}`), [], 'a process of the run outlived it');
  };

  before(async () => {
    s = await startTestStack({ RUNWAY_KILL_GRACE_SECONDS: '1' });
    attacker = await newUser(s, 'mallory@example.com');
  });
  after(() => s.stop());

  it("reads no key, token, credential or other workspace's file, sees no other process, and is refused by NATS and PostgreSQL", async () => {
    const victimWs = s.workspaceId;
    await uploadPackage(s, 'deployments', [
      { path: 'victim.py', content: 'import time\nprint("victim running", flush=True)\ntime.sleep(600)\n' },
      { path: 'daemon_done.py', content: DAEMON },
      { path: 'daemon_sleep.py', content: `${DAEMON}time.sleep(600)\n` },
    ]);
    await uploadPackage(s, 'configurations', [
      { path: 'prod.secrets.toml', content: `[sources.demo]\napi_key = "${SECRET}"\n` },
    ]);
    await job(victimWs, 'victim.py');
    const victimRun = await run(victimWs, 'victim.py');
    await waitForStatus(s, victimRun, ['running'], 30_000);
    const victimRunDir = join(s.dataDir, 'work', victimRun);
    assert.ok(
      existsSync(join(victimRunDir, '.dlt', 'prod.secrets.toml')),
      'the victim has its secrets on disk',
    );
    for (const f of ['master.key', 'jwt.key', 'admin-token'])
      assert.ok(existsSync(join(s.dataDir, f)), `${f} exists on the host`);

    const natsUrl = new URL(s.env.natsUrl.replace(/^nats:/, 'http:'));
    const pgUrl = new URL((process.env.DATABASE_URL ?? '').replace(/^postgres(ql)?:/, 'http:'));
    const probe = probeScript({
      dataDir: s.dataDir,
      victimRunDir,
      victimWorkspaceDir: join(s.dataDir, 'workspaces', victimWs),
      victimRunId: victimRun,
      victimWorkspaceId: victimWs,
      nats: { host: natsUrl.hostname, port: Number(natsUrl.port) },
      pg: { host: pgUrl.hostname, port: Number(pgUrl.port) },
    });
    await uploadPackage(s, 'deployments', [{ path: 'probe.py', content: probe }], {
      workspace: attacker.workspaceId,
      token: attacker.token,
    });
    await job(attacker.workspaceId, 'probe.py', attacker.token);
    const probeRun = await run(attacker.workspaceId, 'probe.py', attacker.token);
    const done = await s.call(
      'GET',
      `/api/v1/workspaces/${attacker.workspaceId}/runs/${probeRun}`,
      undefined,
      attacker.token,
    );
    assert.equal(done.status, 200);
    let out = '';
    for (const until = Date.now() + 60_000; Date.now() < until && !out.includes('probe done');) {
      out = await logs(attacker.workspaceId, probeRun, attacker.token);
      if (!out.includes('probe done')) await new Promise((r) => setTimeout(r, 200));
    }
    assert.match(out, /probe done/, out);
    const leaks = out.split('\n').filter((l) => l.startsWith('LEAK'));
    assert.deepEqual(leaks, [], out);
    // Every door was tried: 7 files, 4 directories, the victim's secrets, 6 variables, NATS ×4, PostgreSQL ×2.
    assert.ok(out.split('\n').filter((l) => l.startsWith('OK')).length >= 25, out);
    assert.ok(!out.includes(SECRET));
    await s.call('POST', `/api/v1/workspaces/${victimWs}/runs/${victimRun}/cancel`);
    await waitForStatus(s, victimRun, ['cancelled'], 30_000);
  });

  it('a double-forked setsid daemon ends with its run: on completion, on cancel and on timeout', async () => {
    const ws = s.workspaceId;
    await job(ws, 'daemon_done.py');
    const completed = await run(ws, 'daemon_done.py');
    const c = await waitForStatus(s, completed, ['completed', 'failed'], 30_000);
    assert.equal(c.status, 'completed', JSON.stringify(c));
    await waitNoDaemon(completed);

    await job(ws, 'daemon_sleep.py');
    const cancelled = await run(ws, 'daemon_sleep.py');
    await waitForStatus(s, cancelled, ['running'], 30_000);
    await waitDaemon(cancelled);
    await s.call('POST', `/api/v1/workspaces/${ws}/runs/${cancelled}/cancel`);
    await waitForStatus(s, cancelled, ['cancelled'], 30_000);
    await waitNoDaemon(cancelled);
    assert.equal(existsSync(join(s.dataDir, 'work', cancelled)), false, 'its files (secrets) are removed');

    await job(ws, 'daemon_sleep.py', undefined, { timeout_seconds: 3 });
    const timedOut = await run(ws, 'daemon_sleep.py');
    await waitDaemon(timedOut);
    const t = await waitForStatus(s, timedOut, ['failed', 'completed'], 30_000);
    assert.equal(t.failure_reason ?? (t as Json).runway_failure_reason ?? 'timeout', 'timeout');
    await waitNoDaemon(timedOut);
  });
});
