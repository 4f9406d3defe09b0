import { z } from 'zod';

/** The body of an error answer of the API. */
export const errorBody = z.object({
  detail: z.string(),
  extra: z.record(z.string(), z.unknown()).optional(),
});

/**
 * One JSON request of the browser-safe clients (dashboard, account): the answer validated with
 * `schema`; no answer (status 0) or an error answer become the client's own error, with the API's
 * `detail` (and `extra`) when it sent one.
 */
export async function callJson<S extends z.ZodType>(
  fetchImpl: typeof fetch,
  url: string,
  init: { method: string; headers: Record<string, string>; body?: unknown },
  schema: S,
  fail: (status: number, detail: string, extra: Record<string, unknown>) => Error,
): Promise<z.infer<S>> {
  const headers = { ...init.headers };
  if (init.body !== undefined) headers['content-type'] = 'application/json';
  let res: Response;
  try {
    res = await fetchImpl(url, {
      method: init.method,
      headers,
      body: init.body === undefined ? undefined : JSON.stringify(init.body),
      credentials: 'same-origin',
    });
  } catch (err) {
    throw fail(0, `cannot reach Runway: ${err instanceof Error ? err.message : String(err)}`, {});
  }
  const text = await res.text();
  let json: unknown;
  try {
    json = text ? JSON.parse(text) : undefined;
  } catch {
    json = undefined;
  }
  if (!res.ok) {
    const e = errorBody.safeParse(json);
    throw fail(
      res.status,
      e.success ? e.data.detail : text.slice(0, 200) || res.statusText,
      e.success ? (e.data.extra ?? {}) : {},
    );
  }
  return schema.parse(json);
}
