import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { livePidsWithArg } from '#libs/testing';
import {
  ProcessExecutor,
  runToCompletion,
  SandboxExecutor,
  type ExecSpec,
  type RunExecutor,
} from './index.js';

const limits = { memoryBytes: 1024 * 1024 * 1024, processes: 256, openFiles: 1024, fileBytes: 0 };
const ws = '0b9c1e2d-3f4a-4b5c-8d6e-7f8091a2b3c4';

for (const make of [() => SandboxExecutor.create({ limits }), () => new ProcessExecutor()]) {
  const executor: RunExecutor = make();
  describe(`executor ${executor.name} (real processes)`, () => {
    let dir: string;
    let outside: string;
    const spec = (script: string): ExecSpec => ({
      argv: ['/bin/sh', '-c', script],
      env: { PATH: '/usr/bin:/bin' },
      cwd: dir,
      workspaceId: ws,
      writable: [dir],
      readable: [],
    });
    before(() => {
      dir = mkdtempSync(join(tmpdir(), 'runway-exec-'));
      outside = mkdtempSync(join(tmpdir(), 'runway-exec-outside-'));
      writeFileSync(join(outside, 'key'), 'secret', { mode: 0o600 });
      executor.grant(ws, [dir]);
    });
    after(() => {
      rmSync(dir, { recursive: true, force: true });
      rmSync(outside, { recursive: true, force: true });
    });

    it('runs a process with its output and exit code, writing its directory', async () => {
      const r = await runToCompletion(
        executor,
        spec('echo hello; echo oops >&2; echo x > out; exit 3'),
        10_000,
      );
      assert.equal(r.code, 3);
      assert.equal(r.stdout, 'hello\n');
      assert.equal(r.stderrTail, 'oops\n');
      assert.equal(readFileSync(join(dir, 'out'), 'utf8'), 'x\n');
    });

    it('ends a process with SIGTERM, and one that ignores SIGTERM with SIGKILL', async () => {
      const p = executor.spawn(spec('exec sleep 60'));
      await new Promise((r) => setTimeout(r, 200));
      assert.ok(p.alive());
      p.signal('SIGTERM');
      const exit = await p.exited;
      assert.equal(exit.signal, 'SIGTERM');
      assert.ok(await p.waitGone(2_000));

      const stubborn = executor.spawn(spec("trap '' TERM; echo up; while :; do sleep 1; done"));
      await new Promise((r) => setTimeout(r, 300));
      stubborn.signal('SIGTERM');
      assert.equal(await stubborn.waitGone(500), false, 'SIGTERM is ignored');
      stubborn.signal('SIGKILL');
      assert.ok(await stubborn.waitGone(5_000));
      assert.equal(stubborn.alive(), false);
    });

    if (executor.name === 'local-sandbox') {
      it('drops to the workspace uid and sees nothing of the host but what it was given', async () => {
        const r = await runToCompletion(
          executor,
          spec(
            `id -u; cat ${join(outside, 'key')} 2>&1; ls /root 2>&1; touch /usr/x 2>&1; ls /proc | grep -c '^[0-9]'`,
          ),
          10_000,
        );
        const [uid, key, root, usr, procs] = r.stdout.trim().split('\n');
        assert.notEqual(uid, '0');
        assert.equal(Number(uid), statSync(dir).uid, 'its directory was handed to its uid');
        assert.match(key!, /No such file/);
        assert.match(root!, /No such file/);
        assert.match(usr!, /Read-only|Permission denied/);
        assert.ok(Number(procs) <= 4, `sees ${procs} processes`);
      });

      it('kills a double-forked setsid daemon when the main process exits', async () => {
        const token = `daemon-${Date.now()}`;
        const r = await runToCompletion(
          executor,
          spec(`setsid sh -c 'exec sleep 60 ${token}' & echo started`),
          10_000,
        );
        assert.equal(r.code, 0);
        assert.deepEqual(livePidsWithArg(token), [], 'the daemon died with its run');
      });
    }
  });
}
