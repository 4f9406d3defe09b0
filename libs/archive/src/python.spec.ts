import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import {
  chmodSync,
  existsSync,
  linkSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { buildPackage, readPackage, type BuildFile } from './index.js';

/**
 * Cross-checks libs/archive against the real dlt CLI code (dlt 1.20's PackageBuilder and
 * digest256_tar_stream, in the project venv that `npm test` sets up).
 */
const python = process.env.RUNWAY_PYTHON ?? join(process.cwd(), '.venv', 'bin', 'python');

const SCRIPT = String.raw`
import io, json, os, sys, tarfile
from pathlib import Path
from dlt._workspace.deployment.package_builder import PackageBuilder
from dlt.common.utils import digest256_tar_stream

cmd = sys.argv[1]
if cmd == "build":
    root = Path(sys.argv[2]).resolve()
    class Ctx:
        run_dir = str(root)
    selection = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for fn in sorted(filenames):
            p = Path(dirpath) / fn
            selection.append((p, p.relative_to(root)))
    builder = PackageBuilder(Ctx())
    buf = io.BytesIO()
    content_hash = builder.write_package_to_stream(selection, buf)
    open(sys.argv[3], "wb").write(buf.getvalue())
    print(json.dumps({"content_hash": content_hash}))
else:
    data = open(sys.argv[2], "rb").read()
    stream = io.BytesIO(data)
    content_hash, names = digest256_tar_stream(stream, filter_file_names=lambda x: x != "manifest.yaml")
    stream.seek(0)
    with tarfile.open(fileobj=stream, mode="r:*") as tar:
        members = [{"name": m.name, "type": m.type.decode(), "linkname": m.linkname, "mode": m.mode,
                    "data": (tar.extractfile(m).read().decode("utf-8", "replace") if m.isfile() else None)}
                   for m in tar.getmembers()]
    print(json.dumps({"content_hash": content_hash, "names": names, "members": members}))
`;

function py(...args: string[]): Record<string, unknown> {
  const r = spawnSync(python, ['-c', SCRIPT, ...args], {
    encoding: 'utf8',
    env: { ...process.env, RUNTIME__DLTHUB_TELEMETRY: 'false' },
  });
  assert.equal(r.status, 0, `python failed: ${r.stderr}`);
  return JSON.parse(r.stdout.trim().split('\n').pop()!) as Record<string, unknown>;
}

function dltAvailable(): boolean {
  if (!existsSync(python) && !process.env.RUNWAY_PYTHON) return false;
  const r = spawnSync(python, ['-c', 'import dlt._workspace.deployment.package_builder'], {
    encoding: 'utf8',
  });
  return r.status === 0;
}

describe('libs/archive against the real dlt CLI (Python)', () => {
  const available = dltAvailable();
  // Under `npm test` the venv is always set up: a missing dlt is a failure there, not a skip.
  const required = process.env.RUNWAY_TEST_WORK !== undefined;
  let dir: string;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'runway-archive-py-'));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it(
    'computes the same content_hash as dlt for a package dlt built',
    { skip: !available && !required ? 'no Python with dlt' : false },
    async () => {
      assert.ok(available, `dlt is not importable with ${python}`);
      const ws = join(dir, 'ws');
      const long = 'n'.repeat(150);
      const files: Record<string, string | Buffer> = {
        'pipelines/load.py': 'import dlt\nprint("hello")\n',
        'pipelines/__init__.py': '',
        'déjà vu/ünïcode config.yaml': 'x: 1\n',
        [`deep/${long}/${long}.py`]: 'long = True\n',
        'data/blob.bin': Buffer.from(Array.from({ length: 300_000 }, (_, i) => (i * 7919) % 251)),
        '😀.txt': 'astral\n',
        'ﬀ.txt': 'ligature\n',
        'a.txt': 'first\n',
      };
      for (const [p, c] of Object.entries(files)) {
        mkdirSync(join(ws, p, '..'), { recursive: true });
        writeFileSync(join(ws, p), c);
      }
      chmodSync(join(ws, 'pipelines/load.py'), 0o755);
      symlinkSync('load.py', join(ws, 'pipelines/alias.py'));
      linkSync(join(ws, 'a.txt'), join(ws, 'b-hardlink.txt'));
      const out = join(dir, 'dlt.tar.gz');
      const { content_hash } = py('build', ws, out);
      const pkg = await readPackage(readFileSync(out));
      assert.equal(pkg.contentHash, content_hash, 'content hash differs from dlt PackageBuilder');
      const byPath = new Map(pkg.files.map((f) => [f.path, f]));
      assert.equal(byPath.get('pipelines/alias.py')?.type, 'symlink');
      assert.equal(byPath.get('pipelines/alias.py')?.target, 'load.py');
      assert.equal(byPath.get('pipelines/load.py')?.mode, 0o755);
      assert.equal(byPath.get('b-hardlink.txt')?.content.toString(), 'first\n');
      assert.equal(byPath.get('data/blob.bin')?.size, 300_000);
      assert.equal(pkg.files.length, 10);
    },
  );

  it(
    'builds packages that dlt reads and hashes identically',
    { skip: !available && !required ? 'no Python with dlt' : false },
    async () => {
      assert.ok(available, `dlt is not importable with ${python}`);
      const files: BuildFile[] = [
        { path: 'pipelines/load.py', content: 'import dlt\n', mode: 0o755 },
        { path: '😀/ünï code.txt', content: 'x' },
        { path: 'ﬀ.txt', content: 'y' },
        { path: `${'d'.repeat(120)}/${'f'.repeat(120)}`, content: 'long' },
        { path: 'pipelines/alias.py', target: 'load.py' },
        { path: 'empty', content: '' },
      ];
      const out = join(dir, 'ours.tar.gz');
      const archive = buildPackage(files);
      writeFileSync(out, archive);
      const seen = py('digest', out) as {
        content_hash: string;
        names: string[];
        members: { name: string; type: string; linkname: string; mode: number; data: string | null }[];
      };
      const ours = await readPackage(archive);
      assert.equal(ours.contentHash, seen.content_hash);
      assert.equal(seen.members.at(-1)!.name, 'manifest.yaml', 'manifest.yaml is written last');
      const load = seen.members.find((m) => m.name === 'files/pipelines/load.py')!;
      assert.equal(load.mode, 0o755);
      assert.equal(load.data, 'import dlt\n');
      const alias = seen.members.find((m) => m.name === 'files/pipelines/alias.py')!;
      assert.deepEqual([alias.type, alias.linkname], ['2', 'load.py']);
      assert.ok(seen.members.some((m) => m.name === `files/${'d'.repeat(120)}/${'f'.repeat(120)}`));
    },
  );
});
