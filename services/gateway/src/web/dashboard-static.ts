import { existsSync, readFileSync, statSync } from 'node:fs';
import { join, normalize, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  static as serveStatic,
  type NextFunction,
  type Request,
  type RequestHandler,
  type Response,
} from 'express';

/** Where `vite build` puts the dashboard (web/dist at the repository root; docs/dashboard.md). */
export const DEFAULT_WEB_DIST = fileURLToPath(new URL('../../../../../web/dist', import.meta.url));

/**
 * Paths the dashboard never answers: the APIs, the compatible routes, the interactive apps and the
 * probes. Everything else that a browser asks for as a page is the single-page application.
 */
const RESERVED = /^\/(api|auth|v1|telemetry|i|p|metrics|readyz|healthz|livez|openapi)(\/|$)/;

/** Hashed assets never change under their name: cached for a year. */
const HASHED = /^\/assets\/[^/]+-[A-Za-z0-9_-]{8,}\.[a-z0-9]+$/;

/**
 * Serves the web dashboard at `/`: files of web/dist (hashed assets with a long cache), and
 * index.html (never cached) for every other page address a browser opens (the SPA's own routes,
 * e.g. /w/…/runs/…, /device?code=…). API, auth, compatible and probe paths pass through untouched.
 */
export function dashboardStatic(dir = DEFAULT_WEB_DIST): RequestHandler {
  const files = serveStatic(dir, {
    index: false,
    fallthrough: true,
    redirect: false,
    dotfiles: 'ignore',
    setHeaders: (res: Response, path: string) => {
      const rel = `/${normalize(path.slice(dir.length)).split(sep).filter(Boolean).join('/')}`;
      res.setHeader('Cache-Control', HASHED.test(rel) ? 'public, max-age=31536000, immutable' : 'no-cache');
      res.setHeader('X-Content-Type-Options', 'nosniff');
    },
  });
  const indexFile = join(dir, 'index.html');
  let cached: { mtimeMs: number; html: string } | undefined;
  const indexHtml = (): string | undefined => {
    const st = statSync(indexFile, { throwIfNoEntry: false });
    if (!st) return undefined;
    if (!cached || cached.mtimeMs !== st.mtimeMs)
      cached = { mtimeMs: st.mtimeMs, html: readFileSync(indexFile, 'utf8') };
    return cached.html;
  };

  return (req: Request, res: Response, next: NextFunction) => {
    if ((req.method !== 'GET' && req.method !== 'HEAD') || RESERVED.test(req.path)) return next();
    const page = () => {
      // A missing asset is a 404, not the page (a stale tab asking for an old hash).
      if (req.path.startsWith('/assets/') || !req.accepts('html')) return next();
      const html = indexHtml();
      res.setHeader('Cache-Control', 'no-cache');
      res.setHeader('X-Content-Type-Options', 'nosniff');
      res.setHeader('X-Frame-Options', 'DENY');
      res.setHeader('Referrer-Policy', 'same-origin');
      if (html === undefined) {
        res
          .status(503)
          .type('text/plain')
          .send(
            'The web dashboard is not built: run `npm start` (or `node scripts/setup.mjs`), which builds web/dist.\n',
          );
        return;
      }
      res.status(200).type('html').send(html);
    };
    if (req.path === '/' || req.path === '/index.html') return page();
    files(req, res, (err?: unknown) => (err ? next(err) : page()));
  };
}

/** Whether the dashboard has been built into `dir`. */
export function dashboardBuilt(dir = DEFAULT_WEB_DIST): boolean {
  return existsSync(join(dir, 'index.html'));
}
