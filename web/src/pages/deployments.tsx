import { useEffect, useMemo, useState } from 'react';
import type { DeploymentDiff } from '../../../libs/client/src/dashboard.js';
import { account, dashboard } from '../api.js';
import { useApp } from '../context.js';
import { Empty, ErrorBox, Loading, PageHeader, Show, formatBytes, relativeTime, useAsync } from '../ui.js';

interface FileNode {
  name: string;
  path: string;
  size: number;
  sha256: string | null;
  children?: FileNode[];
}

/** Paths → a tree of folders (first) and files, by name. */
function treeOf(files: readonly { path: string; size: number; sha256: string | null }[]): FileNode[] {
  const root: FileNode = { name: '', path: '', size: 0, sha256: null, children: [] };
  for (const f of files) {
    const parts = f.path.split('/');
    let node = root;
    parts.forEach((part, i) => {
      node.children ??= [];
      let next = node.children.find((c) => c.name === part);
      if (!next) {
        next = {
          name: part,
          path: parts.slice(0, i + 1).join('/'),
          size: 0,
          sha256: null,
          ...(i < parts.length - 1 ? { children: [] } : {}),
        };
        node.children.push(next);
      }
      next.size += f.size;
      if (i === parts.length - 1) next.sha256 = f.sha256;
      node = next;
    });
  }
  const sort = (n: FileNode) => {
    n.children?.sort((a, b) => Number(!a.children) - Number(!b.children) || a.name.localeCompare(b.name));
    n.children?.forEach(sort);
  };
  sort(root);
  return root.children ?? [];
}

export function DeploymentsPage() {
  const { ws } = useApp();
  const versions = useAsync(() => account.deployments(ws.id), [ws.id]);
  const [selected, setSelected] = useState<number>();
  const list = versions.value?.items;
  const latest = list?.reduce((m, d) => Math.max(m, d.version), 0);
  const current = selected ?? latest;
  return (
    <section>
      <PageHeader title="Deployments" />
      <Show a={versions} what="deployment versions">
        {(v) =>
          v.items.length === 0 ? (
            <Empty>
              <p>Nothing deployed yet.</p>
              <p className="muted small">
                Deploy a dlt workspace with <code>dlt runtime deploy</code> or <code>runway deploy</code>.
              </p>
            </Empty>
          ) : (
            <div className="deploy-grid">
              <div className="card">
                <h2>Versions</h2>
                <ul className="versions" aria-label="Deployment versions">
                  {[...v.items]
                    .sort((a, b) => b.version - a.version)
                    .map((d) => (
                      <li key={d.id}>
                        <button
                          type="button"
                          className={d.version === current ? 'version active' : 'version'}
                          aria-pressed={d.version === current}
                          onClick={() => setSelected(d.version)}
                        >
                          <strong>Version {d.version}</strong>
                          <span className="muted">
                            {d.file_count} files · {formatBytes(d.size)} · {relativeTime(d.date_added)}
                          </span>
                        </button>
                      </li>
                    ))}
                </ul>
              </div>
              {current !== undefined && <FileBrowser key={current} version={current} />}
              {v.items.length > 1 && current !== undefined && (
                <DiffView versions={v.items.map((d) => d.version).sort((a, b) => a - b)} to={current} />
              )}
            </div>
          )
        }
      </Show>
    </section>
  );
}

function FileBrowser({ version }: { version: number }) {
  const { ws } = useApp();
  const files = useAsync(() => account.deploymentFiles(ws.id, version), [ws.id, version]);
  const tree = useMemo(() => treeOf(files.value?.items ?? []), [files.value]);
  const [open, setOpen] = useState<FileNode>();
  return (
    <div className="card files">
      <h2>Files of version {version}</h2>
      <Show a={files} what="the file list">
        {(f) =>
          f.items.length === 0 ? (
            <Empty>This version has no files.</Empty>
          ) : (
            <ul className="tree" role="tree" aria-label={`Files of version ${version}`}>
              {tree.map((n) => (
                <TreeNode key={n.path} node={n} onOpen={setOpen} depth={0} />
              ))}
            </ul>
          )
        }
      </Show>
      {open && <FileView file={open} onClose={() => setOpen(undefined)} />}
    </div>
  );
}

function TreeNode({ node, onOpen, depth }: { node: FileNode; onOpen: (n: FileNode) => void; depth: number }) {
  const [expanded, setExpanded] = useState(depth < 1);
  if (node.children)
    return (
      <li role="treeitem" aria-expanded={expanded} aria-selected={false}>
        <button type="button" className="tree-dir" onClick={() => setExpanded((e) => !e)}>
          <span aria-hidden="true">{expanded ? '▾' : '▸'}</span> {node.name}/
        </button>
        {expanded && (
          <ul role="group">
            {node.children.map((c) => (
              <TreeNode key={c.path} node={c} onOpen={onOpen} depth={depth + 1} />
            ))}
          </ul>
        )}
      </li>
    );
  return (
    <li role="treeitem" aria-selected={false}>
      <button type="button" className="tree-file" onClick={() => onOpen(node)}>
        {node.name} <span className="muted">{formatBytes(node.size)}</span>
      </button>
    </li>
  );
}

function FileView({ file, onClose }: { file: FileNode; onClose: () => void }) {
  const { ws } = useApp();
  const [text, setText] = useState<string>();
  const [error, setError] = useState<string>();
  useEffect(() => {
    let live = true;
    setText(undefined);
    setError(undefined);
    if (!file.sha256) {
      setError('This entry has no content (a link or an empty file).');
      return;
    }
    if (file.size > 512 * 1024) {
      setError(`This file is ${formatBytes(file.size)}: too large to show here.`);
      return;
    }
    fetch(account.blobUrl(ws.id, file.sha256), { credentials: 'same-origin' })
      .then(async (res) => {
        const body = await res.text();
        if (!res.ok) throw new Error(`could not load the file (HTTP ${res.status})`);
        if (live) setText(body);
      })
      .catch((err: unknown) => live && setError(err instanceof Error ? err.message : String(err)));
    return () => {
      live = false;
    };
  }, [ws.id, file]);
  return (
    <div className="file-view">
      <div className="row">
        <h3>{file.path}</h3>
        <span className="spacer" />
        <button type="button" className="secondary" onClick={onClose}>
          Close
        </button>
      </div>
      <ErrorBox error={error} />
      {text === undefined && !error && <Loading what={file.path} />}
      {text !== undefined && (
        <pre className="code-view" data-testid="file-view">
          {text}
        </pre>
      )}
    </div>
  );
}

function DiffView({ versions, to }: { versions: number[]; to: number }) {
  const { ws } = useApp();
  const earlier = versions.filter((v) => v < to);
  const [from, setFrom] = useState<number | undefined>(earlier[earlier.length - 1]);
  const [target, setTarget] = useState(to);
  useEffect(() => {
    setTarget(to);
    const e = versions.filter((v) => v < to);
    setFrom(e[e.length - 1] ?? versions.find((v) => v !== to));
  }, [to, versions]);
  const diff = useAsync<DeploymentDiff | undefined>(
    () => (from === undefined ? Promise.resolve(undefined) : dashboard.deploymentDiff(ws.id, from, target)),
    [ws.id, from, target],
  );
  return (
    <div className="card diff">
      <h2>Compare versions</h2>
      <div className="row">
        <label>
          From
          <select value={from ?? ''} onChange={(e) => setFrom(Number(e.target.value))}>
            {versions.map((v) => (
              <option key={v} value={v}>
                version {v}
              </option>
            ))}
          </select>
        </label>
        <label>
          To
          <select value={target} onChange={(e) => setTarget(Number(e.target.value))}>
            {versions.map((v) => (
              <option key={v} value={v}>
                version {v}
              </option>
            ))}
          </select>
        </label>
      </div>
      <Show a={diff} what="the differences">
        {(d) =>
          !d ? null : d.added.length + d.removed.length + d.changed.length === 0 ? (
            <Empty>
              No file differs between version {d.from.version} and version {d.to.version}.
            </Empty>
          ) : (
            <div data-testid="diff">
              <p>
                {d.added.length} added · {d.removed.length} removed · {d.changed.length} changed ·{' '}
                {d.unchanged} unchanged
              </p>
              <ul className="diff-files">
                {d.added.map((f) => (
                  <li key={`a${f.path}`} className="added">
                    + {f.path} <span className="muted">{formatBytes(f.size)}</span>
                  </li>
                ))}
                {d.removed.map((f) => (
                  <li key={`r${f.path}`} className="removed">
                    − {f.path}
                  </li>
                ))}
              </ul>
              {d.changed.map((c) => (
                <details key={c.path} open className="diff-file">
                  <summary>
                    ~ {c.path}{' '}
                    <span className="muted">
                      {formatBytes(c.before.size)} → {formatBytes(c.after.size)}
                    </span>
                  </summary>
                  {c.diff ? (
                    <pre className="code-view unified">
                      {c.diff.split('\n').map((line, i) => (
                        <span
                          key={i}
                          className={
                            line.startsWith('+') && !line.startsWith('+++')
                              ? 'add'
                              : line.startsWith('-') && !line.startsWith('---')
                                ? 'del'
                                : line.startsWith('@@')
                                  ? 'hunk'
                                  : undefined
                          }
                        >
                          {line}
                          {'\n'}
                        </span>
                      ))}
                    </pre>
                  ) : (
                    <p className="muted">
                      {c.binary ? 'Binary file: no text diff.' : 'Too large to compare here.'}
                    </p>
                  )}
                </details>
              ))}
            </div>
          )
        }
      </Show>
      <p className="muted small">Versions are kept forever; each deploy that changes a file makes one.</p>
    </div>
  );
}
