import busboy from 'busboy';
import type { IncomingMessage } from 'node:http';
import { ApiError, badRequest } from './errors.js';

export interface MultipartFile {
  /** The form field name (e.g. `file`). */
  field: string;
  filename: string;
  mimeType: string;
  data: Buffer;
}

export interface MultipartOptions {
  /** The file part to read (default `file`, as the dlt CLI sends). Other parts are discarded. */
  field?: string;
  /** Largest file accepted, in bytes. */
  maxBytes: number;
  /** What the error messages call the file (default "upload"). */
  what?: string;
}

const MAX_OVERHEAD = 64 * 1024;

export function humanBytes(n: number): string {
  return n >= 1024 * 1024 && n % (1024 * 1024) === 0
    ? `${n / (1024 * 1024)} MB`
    : n >= 1024 && n % 1024 === 0
      ? `${n / 1024} KB`
      : `${n} bytes`;
}

/**
 * Reads one file part of a multipart/form-data request with a streaming parser and hard limits:
 * nothing beyond `maxBytes` is kept in memory. Errors are 400s with a precise detail (the dlt CLI
 * prints the detail of a 400 only).
 */
export async function readMultipartFile(
  req: IncomingMessage,
  opts: MultipartOptions,
): Promise<MultipartFile> {
  const { main } = await readMultipartParts(req, {
    main: { fields: [opts.field ?? 'file'], maxBytes: opts.maxBytes, what: opts.what ?? 'upload' },
  });
  return main;
}

export interface MultipartPartsOptions {
  /** The archive part: the first of these names found (e.g. `files` of dlt-runtime 0.26.1, `file` of 0.20). */
  main: { fields: readonly string[]; maxBytes: number; what: string };
  /** Optional further parts by name, each with its own limit; other parts are discarded. */
  extra?: Record<string, { maxBytes: number; what: string }>;
}

/**
 * Reads a required main file part (under one of several names) and optional extra file parts of a
 * multipart/form-data request, each with a hard limit (400 with a precise detail otherwise; an
 * oversize main part carries `code: archive_too_large`).
 */
export function readMultipartParts(
  req: IncomingMessage,
  opts: MultipartPartsOptions,
): Promise<{ main: MultipartFile; extra: Map<string, MultipartFile> }> {
  const names = opts.main.fields;
  const what = opts.main.what;
  const contentType = req.headers['content-type'] ?? '';
  if (!/^multipart\/form-data/i.test(contentType)) {
    return Promise.reject(
      badRequest(
        `expected a multipart/form-data body with the ${what} in a part named "${names.join('" or "')}"`,
      ),
    );
  }
  const extraMax = Object.values(opts.extra ?? {}).reduce((n, e) => n + e.maxBytes, 0);
  const declared = Number(req.headers['content-length'] ?? NaN);
  if (Number.isFinite(declared) && declared > opts.main.maxBytes + extraMax + MAX_OVERHEAD) {
    req.resume();
    return Promise.reject(
      badRequest(`${what} too large: ${declared} bytes (at most ${humanBytes(opts.main.maxBytes)})`, {
        code: 'archive_too_large',
      }),
    );
  }
  return new Promise((resolve, reject) => {
    let bb: busboy.Busboy;
    try {
      bb = busboy({
        headers: req.headers,
        limits: {
          // One more byte than the largest part: the per-part checks below see an oversize part.
          fileSize:
            Math.max(opts.main.maxBytes, ...Object.values(opts.extra ?? {}).map((e) => e.maxBytes)) + 1,
          files: 5,
          fields: 20,
          parts: 25,
          fieldSize: 64 * 1024,
        },
      });
    } catch (err) {
      reject(badRequest(`malformed multipart body: ${err instanceof Error ? err.message : String(err)}`));
      return;
    }
    let main: MultipartFile | undefined;
    const extra = new Map<string, MultipartFile>();
    let failure: ApiError | undefined;
    let pending = 0;
    let finished = false;
    const settle = () => {
      if (!finished || pending > 0) return;
      if (failure) reject(failure);
      else if (main) resolve({ main, extra });
      else
        reject(
          badRequest(`missing the ${what}: send it as a multipart file part named "${names.join('" or "')}"`),
        );
    };
    bb.on('file', (name, stream, info) => {
      const isMain = names.includes(name) && !main;
      const spec = isMain ? opts.main : opts.extra?.[name];
      if (!spec || (!isMain && extra.has(name)) || failure) {
        stream.resume();
        return;
      }
      pending++;
      const chunks: Buffer[] = [];
      let size = 0;
      stream.on('data', (c: Buffer) => {
        size += c.length;
        if (size > spec.maxBytes) {
          failure ??= badRequest(`${spec.what} too large: more than ${humanBytes(spec.maxBytes)}`, {
            code: isMain ? 'archive_too_large' : 'part_too_large',
          });
          chunks.length = 0;
          return;
        }
        chunks.push(c);
      });
      stream.on('close', () => {
        pending--;
        if (!failure) {
          const file = {
            field: name,
            filename: info.filename ?? '',
            mimeType: info.mimeType,
            data: Buffer.concat(chunks),
          };
          if (isMain) main = file;
          else extra.set(name, file);
        }
        settle();
      });
      stream.on('error', (err: Error) => {
        failure ??= badRequest(`malformed multipart body: ${err.message}`);
      });
    });
    bb.on('error', (err: Error) => {
      failure ??= badRequest(`malformed multipart body: ${err.message}`);
      finished = true;
      pending = 0;
      req.unpipe(bb);
      req.resume();
      settle();
    });
    bb.on('close', () => {
      finished = true;
      settle();
    });
    req.on('aborted', () => {
      failure ??= badRequest('the request was aborted');
      finished = true;
      pending = 0;
      settle();
    });
    req.pipe(bb);
  });
}
