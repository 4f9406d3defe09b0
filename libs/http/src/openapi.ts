import { RequestMethod, SetMetadata } from '@nestjs/common';
import { z } from 'zod';

export interface ApiDocSpec {
  summary: string;
  body?: z.ZodType;
  response?: z.ZodType;
  /** Content type of the body when not JSON (e.g. multipart/form-data). */
  bodyContentType?: string;
  successStatus?: number;
}

export const API_DOC = 'runway:api-doc';
/** Describes a route for the generated OpenAPI document. */
export const ApiDoc = (spec: ApiDocSpec) => SetMetadata(API_DOC, spec);

const METHODS: Record<number, string> = {
  [RequestMethod.GET]: 'get',
  [RequestMethod.POST]: 'post',
  [RequestMethod.PUT]: 'put',
  [RequestMethod.DELETE]: 'delete',
  [RequestMethod.PATCH]: 'patch',
};

const errorSchema = {
  type: 'object',
  required: ['status_code', 'detail'],
  properties: { status_code: { type: 'integer' }, detail: { type: 'string' }, extra: { type: 'object' } },
};

function joinPath(...parts: string[]): string {
  const p = parts
    .flatMap((x) => x.split('/'))
    .filter(Boolean)
    .map((seg) => (seg.startsWith(':') ? `{${seg.slice(1).replace(/[^A-Za-z0-9_]/g, '')}}` : seg))
    .join('/');
  return `/${p}`;
}

function jsonSchema(schema: z.ZodType): unknown {
  try {
    return z.toJSONSchema(schema, { unrepresentable: 'any' });
  } catch {
    return {};
  }
}

/**
 * Builds an OpenAPI 3.1 document from the controllers' own routing metadata (every mapped route
 * appears), enriched by @ApiDoc where present.
 */
export function buildOpenApi(
  controllers: readonly (abstract new (...args: never[]) => unknown)[],
  opts: { title: string; version: string; publicKey: string },
) {
  const paths: Record<string, Record<string, unknown>> = {};
  for (const ctrl of controllers) {
    const base = (Reflect.getMetadata('path', ctrl) as string | undefined) ?? '';
    const proto = ctrl.prototype as Record<string, unknown>;
    for (const name of Object.getOwnPropertyNames(proto)) {
      if (name === 'constructor') continue;
      const fn = proto[name];
      if (typeof fn !== 'function') continue;
      const method = Reflect.getMetadata('method', fn) as number | undefined;
      const sub = Reflect.getMetadata('path', fn) as string | undefined;
      if (method === undefined || sub === undefined || !METHODS[method]) continue;
      const path = joinPath(base, sub);
      if (!path.startsWith('/api/') && !path.startsWith('/auth/')) continue;
      const doc = Reflect.getMetadata(API_DOC, fn) as ApiDocSpec | undefined;
      const isPublic =
        Reflect.getMetadata(opts.publicKey, fn) === true ||
        Reflect.getMetadata(opts.publicKey, ctrl) === true;
      const params = [...path.matchAll(/\{([^}]+)\}/g)].map((m) => ({
        name: m[1],
        in: 'path',
        required: true,
        schema: { type: 'string' },
      }));
      const verb = METHODS[method]!;
      const success = String(doc?.successStatus ?? (verb === 'post' ? 201 : 200));
      paths[path] ??= {};
      paths[path]![verb] = {
        operationId: `${ctrl.name.replace(/Controller$/, '')}_${name}`,
        summary: doc?.summary ?? name,
        tags: [ctrl.name.replace(/Controller$/, '')],
        ...(params.length ? { parameters: params } : {}),
        ...(doc?.body
          ? {
              requestBody: {
                required: true,
                content: { [doc.bodyContentType ?? 'application/json']: { schema: jsonSchema(doc.body) } },
              },
            }
          : {}),
        ...(isPublic ? { security: [] } : {}),
        responses: {
          [success]: {
            description: 'OK',
            ...(doc?.response
              ? { content: { 'application/json': { schema: jsonSchema(doc.response) } } }
              : {}),
          },
          ...Object.fromEntries(
            ['400', '401', '403', '404'].map((s) => [
              s,
              {
                description: 'Error',
                content: { 'application/json': { schema: { $ref: '#/components/schemas/ErrorResponse' } } },
              },
            ]),
          ),
        },
      };
    }
  }
  return {
    openapi: '3.1.0',
    info: { title: opts.title, version: opts.version },
    paths,
    components: {
      schemas: { ErrorResponse: errorSchema },
      securitySchemes: {
        bearer: { type: 'http', scheme: 'bearer', description: 'API token (rwy_…) or CLI JWT' },
      },
    },
    security: [{ bearer: [] }],
  };
}
