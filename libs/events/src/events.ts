import { z } from 'zod';

/** An event that does not match its schema (on append) or a stored message that cannot be decoded. */
export class EventSchemaError extends Error {
  constructor(
    readonly eventType: string,
    readonly details: string,
  ) {
    super(`event ${eventType} does not match its schema: ${details}`);
    this.name = 'EventSchemaError';
  }
}

/** An event as deciders produce and consume it: a type tag and its payload. */
export interface DomainEvent<T extends string = string, D = unknown> {
  type: T;
  data: D;
}

export type Upcaster = (data: unknown) => unknown;

export interface EventDefinition<T extends string = string, D = unknown> {
  type: T;
  version: number;
  schema: z.ZodType<D>;
  /** upcasters[n] turns the payload of version n into version n + 1. */
  upcasters: Record<number, Upcaster>;
}

export function defineEvent<T extends string, S extends z.ZodType>(
  type: T,
  schema: S,
  opts: { version?: number; upcasters?: Record<number, Upcaster> } = {},
): EventDefinition<T, z.infer<S>> {
  return {
    type,
    version: opts.version ?? 1,
    schema: schema as z.ZodType<z.infer<S>>,
    upcasters: opts.upcasters ?? {},
  };
}

/** The union of the events a list of definitions describes. */
export type EventOf<Defs extends readonly EventDefinition[]> = {
  [K in keyof Defs]: Defs[K] extends EventDefinition<infer T, infer D> ? DomainEvent<T, D> : never;
}[number];

function describe(error: z.ZodError): string {
  return error.issues.map((i) => `${i.path.length ? i.path.join('.') : '(root)'}: ${i.message}`).join('; ');
}

/** Every event type the store knows: validates on append, upcasts and validates on read. */
export class EventRegistry {
  private readonly defs = new Map<string, EventDefinition>();

  register(...defs: readonly EventDefinition[]): this {
    for (const def of defs) {
      const existing = this.defs.get(def.type);
      if (existing && existing !== def) throw new Error(`event type ${def.type} registered twice`);
      this.defs.set(def.type, def);
    }
    return this;
  }

  has(type: string): boolean {
    return this.defs.has(type);
  }

  types(): string[] {
    return [...this.defs.keys()];
  }

  versionOf(type: string): number {
    return this.require(type).version;
  }

  /** Validates a payload for append; returns the parsed (normalised) payload. */
  validate(event: DomainEvent): unknown {
    const def = this.require(event.type);
    const parsed = def.schema.safeParse(event.data);
    if (!parsed.success) throw new EventSchemaError(event.type, describe(parsed.error));
    return parsed.data;
  }

  /** Upcasts a stored payload to the current version, then validates it. */
  decode(type: string, version: number, data: unknown): unknown {
    const def = this.require(type);
    let current = data;
    for (let v = version; v < def.version; v++) {
      const up = def.upcasters[v];
      if (!up) throw new EventSchemaError(type, `no upcaster from version ${v} to ${v + 1}`);
      current = up(current);
    }
    if (version > def.version)
      throw new EventSchemaError(type, `stored version ${version} is newer than ${def.version}`);
    const parsed = def.schema.safeParse(current);
    if (!parsed.success) throw new EventSchemaError(type, describe(parsed.error));
    return parsed.data;
  }

  private require(type: string): EventDefinition {
    const def = this.defs.get(type);
    if (!def) throw new EventSchemaError(type, 'unknown event type');
    return def;
  }
}
