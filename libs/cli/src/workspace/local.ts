import { createHash } from 'node:crypto';
import { existsSync, lstatSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, relative, resolve, sep } from 'node:path';
import ignore from 'ignore';
import { parse as parseToml } from 'smol-toml';
import { CliError } from '../instance.js';

/** The local dlt workspace: its root (cwd or DLT_PROJECT_DIR) and its `.dlt` folder. */
export class LocalWorkspace {
  readonly root: string;
  readonly dltDir: string;

  constructor(root = process.env.DLT_PROJECT_DIR ?? process.cwd()) {
    this.root = resolve(root);
    this.dltDir = join(this.root, '.dlt');
  }

  get configFile(): string {
    return join(this.dltDir, 'config.toml');
  }

  /** `[runtime]` values of `.dlt/config.toml` (api_base_url, workspace_id …). */
  runtimeConfig(): Record<string, unknown> {
    if (!existsSync(this.configFile)) return {};
    let doc: Record<string, unknown>;
    try {
      doc = parseToml(readFileSync(this.configFile, 'utf8')) as Record<string, unknown>;
    } catch (err) {
      throw new CliError(
        `${this.configFile}: ${err instanceof Error ? err.message.split('\n')[0] : String(err)}`,
      );
    }
    const rt = doc.runtime;
    return rt && typeof rt === 'object' ? (rt as Record<string, unknown>) : {};
  }

  /** Sets `key = "value"` under `[runtime]` in `.dlt/config.toml`, keeping everything else as written. */
  setRuntimeValue(key: string, value: string): void {
    mkdirSync(this.dltDir, { recursive: true });
    const text = existsSync(this.configFile) ? readFileSync(this.configFile, 'utf8') : '';
    const lines = text.split('\n');
    const line = `${key} = ${JSON.stringify(value)}`;
    const header = lines.findIndex((l) => /^\s*\[runtime\]\s*(#.*)?$/.test(l));
    if (header === -1) {
      const out = text.length && !text.endsWith('\n') ? `${text}\n` : text;
      writeFileSync(this.configFile, `${out}${out.trim() ? '\n' : ''}[runtime]\n${line}\n`);
      return;
    }
    let end = lines.length;
    for (let i = header + 1; i < lines.length; i++) {
      if (/^\s*\[/.test(lines[i]!)) {
        end = i;
        break;
      }
    }
    const existing = lines.slice(header + 1, end).findIndex((l) => new RegExp(`^\\s*${key}\\s*=`).test(l));
    if (existing >= 0) lines[header + 1 + existing] = line;
    else lines.splice(header + 1, 0, line);
    writeFileSync(this.configFile, lines.join('\n'));
  }

  /** Code files to deploy: everything but `.dlt/` and what the root .gitignore matches (dlt's rules). */
  codeFiles(): { path: string; abs: string; size: number; mode: number }[] {
    const ig = ignore();
    const gi = join(this.root, '.gitignore');
    if (existsSync(gi)) ig.add(readFileSync(gi, 'utf8'));
    const out: { path: string; abs: string; size: number; mode: number }[] = [];
    const walk = (dir: string) => {
      for (const name of readdirSync(dir).sort()) {
        const abs = join(dir, name);
        const rel = relative(this.root, abs).split(sep).join('/');
        const st = lstatSync(abs);
        if (st.isDirectory()) {
          if (rel === '.dlt' || ig.ignores(`${rel}/`)) continue;
          walk(abs);
        } else if (st.isFile()) {
          if (ig.ignores(rel)) continue;
          out.push({ path: rel, abs, size: st.size, mode: st.mode & 0o777 });
        }
      }
    };
    walk(this.root);
    return out;
  }

  /** Configuration files: every `*config.toml` / `*secrets.toml` under `.dlt/`, relative to it. */
  configFiles(): { path: string; abs: string; size: number; mode: number }[] {
    const out: { path: string; abs: string; size: number; mode: number }[] = [];
    if (!existsSync(this.dltDir)) return out;
    const walk = (dir: string) => {
      for (const name of readdirSync(dir).sort()) {
        const abs = join(dir, name);
        const st = lstatSync(abs);
        if (st.isDirectory()) walk(abs);
        else if (st.isFile() && (name.endsWith('config.toml') || name.endsWith('secrets.toml'))) {
          out.push({
            path: relative(this.dltDir, abs).split(sep).join('/'),
            abs,
            size: st.size,
            mode: st.mode & 0o777,
          });
        }
      }
    };
    walk(this.dltDir);
    return out;
  }
}

export function sha256(buf: Uint8Array): string {
  return createHash('sha256').update(buf).digest('hex');
}
