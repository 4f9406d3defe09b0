/**
 * Whether this process can take work: conditions a part of it requires at boot (`require`) and
 * marks met (`satisfy`), plus checks asked at each probe (NATS connected, PostgreSQL reachable).
 * `/api/v1/ready` and the health port's `/readyz` answer 200 only when all hold, 503 with the
 * reasons otherwise. Liveness (`/api/v1/ping`, `/healthz`) stays separate.
 */
export type ReadinessCheck = () => Promise<string | undefined>;

export interface ReadinessReport {
  ready: boolean;
  reasons: string[];
}

export class Readiness {
  private readonly pending = new Map<string, string>();
  private readonly checks = new Map<string, ReadinessCheck>();

  /** A condition not met yet, with the reason a probe reports meanwhile. */
  require(key: string, reason: string): void {
    this.pending.set(key, reason);
  }

  satisfy(key: string): void {
    this.pending.delete(key);
  }

  /** A check asked at every probe: resolves to a reason when not ready, undefined when ready. */
  addCheck(key: string, check: ReadinessCheck): () => void {
    this.checks.set(key, check);
    return () => {
      if (this.checks.get(key) === check) this.checks.delete(key);
    };
  }

  async report(timeoutMs = 2_000): Promise<ReadinessReport> {
    const reasons = [...this.pending.values()];
    const results = await Promise.all(
      [...this.checks].map(async ([key, check]) => {
        let timer: NodeJS.Timeout | undefined;
        try {
          return await Promise.race([
            check(),
            new Promise<string>((resolve) => {
              timer = setTimeout(() => resolve(`${key}: no answer in ${timeoutMs} ms`), timeoutMs);
            }),
          ]);
        } catch (err) {
          return `${key}: ${err instanceof Error ? err.message : String(err)}`;
        } finally {
          clearTimeout(timer);
        }
      }),
    );
    for (const r of results) if (r) reasons.push(r);
    return { ready: reasons.length === 0, reasons };
  }
}

/** The process's readiness (one per process, like the metrics registry). */
export const readiness = new Readiness();
