import { parse, TomlError } from 'smol-toml';
import { DEFAULT_PROFILE, type ConfigurationFileKind } from '#libs/contracts';
import { DomainError } from '#libs/eventstore';

/** Most bytes of TOML one configuration may hold, all files together (uploads travel in one NATS request). */
export const MAX_CONFIGURATION_BYTES = 512 * 1024;
/** Most characters of key names listed for one configuration (they travel in its event). */
export const MAX_KEY_NAME_CHARS = 256 * 1024;
/** Most files in one configuration. */
export const MAX_CONFIGURATION_FILES = 200;

export interface UploadedFile {
  /** POSIX path relative to `.dlt/`. */
  path: string;
  content: Uint8Array;
}

export interface AnalyzedFile {
  path: string;
  size: number;
  kind: ConfigurationFileKind;
  profile: string | null;
  keys: string[];
}

export interface AnalyzedConfiguration {
  files: AnalyzedFile[];
  profiles: string[];
  warnings: string[];
}

export class InvalidConfigurationError extends DomainError {
  constructor(message: string) {
    super(message, 400, 'invalid_configuration');
    this.name = 'InvalidConfigurationError';
  }
}

const PROFILE_FILE = /^([A-Za-z0-9_-]{1,64})\.(config|secrets)\.toml$/;

/**
 * What dlt makes of a file name: `config.toml` / `secrets.toml` are read under every profile (our
 * `default`), `<profile>.config.toml` / `<profile>.secrets.toml` only under that profile. Other names
 * ending in config.toml / secrets.toml are uploaded by the dlt CLI but read by no profile (null).
 * Anything else is not a configuration file: undefined.
 */
export function classifyFile(
  path: string,
): { kind: ConfigurationFileKind; profile: string | null } | undefined {
  const base = path.slice(path.lastIndexOf('/') + 1);
  const kind: ConfigurationFileKind | undefined = base.endsWith('secrets.toml')
    ? 'secrets'
    : base.endsWith('config.toml')
      ? 'config'
      : undefined;
  if (!kind) return undefined;
  if (base === 'config.toml' || base === 'secrets.toml') return { kind, profile: DEFAULT_PROFILE };
  const m = PROFILE_FILE.exec(base);
  if (m && m[1] !== DEFAULT_PROFILE) return { kind, profile: m[1]! };
  return { kind, profile: null };
}

const BARE_KEY = /^[A-Za-z0-9_-]+$/;
const keySegment = (k: string) => (BARE_KEY.test(k) ? k : JSON.stringify(k));

function isTable(v: unknown): v is Record<string, unknown> {
  if (typeof v !== 'object' || v === null || Array.isArray(v) || v instanceof Date) return false;
  const proto: unknown = Object.getPrototypeOf(v);
  return proto === Object.prototype || proto === null;
}

/** Dotted names of every value a TOML document defines (tables are walked; arrays are values). */
export function dottedKeys(doc: Record<string, unknown>, prefix = '', out: string[] = []): string[] {
  for (const k of Object.keys(doc)) {
    const name = prefix ? `${prefix}.${keySegment(k)}` : keySegment(k);
    const v = doc[k];
    if (isTable(v) && Object.keys(v).length > 0) dottedKeys(v, name, out);
    else out.push(name);
  }
  return out;
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

/** Decodes and parses one TOML file; a syntax error names the file, line and column, never the content. */
export function parseToml(path: string, content: Uint8Array): Record<string, unknown> {
  let text: string;
  try {
    text = utf8.decode(content);
  } catch {
    throw new InvalidConfigurationError(`${path}: not valid UTF-8 text`);
  }
  if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
  try {
    return parse(text, { integersAsBigInt: 'asNeeded', maxDepth: 100 });
  } catch (err) {
    if (err instanceof TomlError) {
      // The library's message ends with a code block quoting the line: leave it out, it may hold a secret.
      const reason = err.message.split('\n')[0]!.replace(/^Invalid TOML document:\s*/, '');
      throw new InvalidConfigurationError(`${path}: line ${err.line}, column ${err.column}: ${reason}`);
    }
    throw new InvalidConfigurationError(`${path}: not a valid TOML document`);
  }
}

function checkPath(path: string): void {
  const bad =
    path.length === 0 ||
    path.length > 1024 ||
    path.startsWith('/') ||
    path.includes('\\') ||
    path.includes('\0') ||
    path.split('/').some((s) => s === '' || s === '.' || s === '..');
  if (bad) throw new InvalidConfigurationError(`${JSON.stringify(path)}: not a valid relative file path`);
}

export function sortProfiles(profiles: Iterable<string>): string[] {
  return [...new Set(profiles)].sort((a, b) =>
    a === DEFAULT_PROFILE ? -1 : b === DEFAULT_PROFILE ? 1 : a < b ? -1 : a > b ? 1 : 0,
  );
}

/** The warnings dlt would give for the profiles a runtime uses: prod (batch jobs) and access (interactive jobs). */
export function profileWarnings(profiles: readonly string[]): string[] {
  const has = (p: string) => profiles.includes(p);
  const warnings: string[] = [];
  if (!has('prod')) {
    warnings.push(
      'profile "prod" is not defined (no prod.config.toml or prod.secrets.toml): batch jobs run with profile prod and will only see config.toml and secrets.toml',
    );
  }
  if (!has('access')) {
    warnings.push(
      `profile "access" is not defined (no access.config.toml or access.secrets.toml): interactive jobs fall back to ${
        has('prod') ? 'profile prod' : 'config.toml and secrets.toml'
      }`,
    );
  }
  return warnings;
}

/**
 * Validates an uploaded `.dlt` configuration: only *config.toml / *secrets.toml files, each a valid
 * TOML document, within the size limits. Returns per file its kind, profile and key names.
 * Throws InvalidConfigurationError (HTTP 400) naming the file (and line) at the first problem.
 */
export function analyzeConfiguration(files: readonly UploadedFile[]): AnalyzedConfiguration {
  if (files.length > MAX_CONFIGURATION_FILES) {
    throw new InvalidConfigurationError(
      `too many files: ${files.length} (at most ${MAX_CONFIGURATION_FILES})`,
    );
  }
  const total = files.reduce((n, f) => n + f.content.length, 0);
  if (total > MAX_CONFIGURATION_BYTES) {
    throw new InvalidConfigurationError(
      `configuration too large: ${total} bytes of TOML (at most ${MAX_CONFIGURATION_BYTES})`,
    );
  }
  const seen = new Set<string>();
  const analyzed: AnalyzedFile[] = [];
  const warnings: string[] = [];
  for (const f of [...files].sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0))) {
    checkPath(f.path);
    if (seen.has(f.path)) throw new InvalidConfigurationError(`${f.path}: appears twice`);
    seen.add(f.path);
    const cls = classifyFile(f.path);
    if (!cls)
      throw new InvalidConfigurationError(
        `${f.path}: not a configuration file: only files named *config.toml or *secrets.toml are accepted`,
      );
    const keys = dottedKeys(parseToml(f.path, f.content)).sort();
    analyzed.push({ path: f.path, size: f.content.length, kind: cls.kind, profile: cls.profile, keys });
    if (cls.profile === null) {
      warnings.push(
        `${f.path} is not read by dlt under any profile: name it ${cls.kind}.toml or <profile>.${cls.kind}.toml`,
      );
    } else if (f.path.includes('/')) {
      warnings.push(`${f.path} is in a subfolder of .dlt/: dlt reads configuration only from .dlt/ itself`);
    }
  }
  const keyChars = analyzed.reduce((n, f) => n + f.keys.reduce((m, k) => m + k.length + 3, 0), 0);
  if (keyChars > MAX_KEY_NAME_CHARS) {
    throw new InvalidConfigurationError(
      `configuration defines too many keys (${keyChars} characters of key names, at most ${MAX_KEY_NAME_CHARS})`,
    );
  }
  const profiles = sortProfiles(analyzed.flatMap((f) => (f.profile ? [f.profile] : [])));
  return { files: analyzed, profiles, warnings: [...profileWarnings(profiles), ...warnings] };
}
