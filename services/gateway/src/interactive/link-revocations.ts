import {
  Inject,
  Injectable,
  Logger,
  type OnApplicationBootstrap,
  type OnApplicationShutdown,
} from '@nestjs/common';
import type { Socket } from 'node:net';
import { AggregateTypes, PublicLinkRevoked, PublicLinkRotated } from '#libs/contracts';
import { SERVICE_CONTEXT, type ServiceContext } from '#libs/service-host';

const logger = new Logger('interactive');
const FOLLOWED = [PublicLinkRotated.type, PublicLinkRevoked.type];

/**
 * Public links that stopped working, learnt from the job events by every gateway replica (an
 * ordered consumer from the stream's end at start, no polling), and the sockets opened through
 * each link: when a link is rotated or revoked, its open sockets (HTTP keep-alive connections and
 * WebSockets) are destroyed at once, and the hash is refused from then on even before the jobs
 * read model has caught up.
 */
@Injectable()
export class LinkRevocations implements OnApplicationBootstrap, OnApplicationShutdown {
  private readonly open = new Map<string, Set<Socket>>();
  /** The link a tracked socket serves now. */
  private readonly linkOf = new WeakMap<Socket, string>();
  private readonly dead = new Set<string>();
  private readonly abort = new AbortController();
  private follower: Promise<void> | undefined;
  private ready: Promise<void> | undefined;

  constructor(@Inject(SERVICE_CONTEXT) private readonly ctx: ServiceContext) {}

  onApplicationBootstrap(): void {
    this.ready = this.start();
  }

  /** Resolves once the follower is subscribed (links revoked from then on are seen). */
  whenReady(): Promise<void> {
    return this.ready ?? Promise.resolve();
  }

  private async start(): Promise<void> {
    const store = this.ctx.store;
    const fromSeq = (await store.lastSequence()) + 1;
    const commits = store.replayStream({
      aggregateType: AggregateTypes.job,
      types: FOLLOWED,
      follow: true,
      fromSeq,
      signal: this.abort.signal,
      onUndecodable: (m, err) =>
        logger.warn(`public links: message ${m.seq} is not readable: ${String(err)}`),
    });
    this.follower = (async () => {
      try {
        for await (const commit of commits) {
          for (const e of commit.events) {
            if (e.type === PublicLinkRotated.type || e.type === PublicLinkRevoked.type) {
              const parsed =
                e.type === PublicLinkRotated.type
                  ? PublicLinkRotated.schema.safeParse(e.data)
                  : PublicLinkRevoked.schema.safeParse(e.data);
              if (parsed.success) this.revoke(parsed.data.previousHash);
            }
          }
        }
      } catch (err) {
        if (!this.abort.signal.aborted) logger.error(`public link follower stopped: ${String(err)}`);
      }
    })();
  }

  /** Whether a link (by its token's hash) was rotated or revoked since this gateway started. */
  isRevoked(tokenHash: string): boolean {
    return this.dead.has(tokenHash);
  }

  /**
   * Registers a socket that serves a link (a WebSocket, or a keep-alive connection whose latest
   * request came through the link); it is destroyed when the link stops working.
   */
  track(tokenHash: string, socket: Socket): void {
    if (this.dead.has(tokenHash)) {
      socket.destroy();
      return;
    }
    const before = this.linkOf.get(socket);
    if (before !== undefined && before !== tokenHash) this.open.get(before)?.delete(socket);
    this.linkOf.set(socket, tokenHash);
    let set = this.open.get(tokenHash);
    if (!set) this.open.set(tokenHash, (set = new Set()));
    if (set.has(socket)) return;
    set.add(socket);
    socket.once('close', () => {
      set.delete(socket);
      if (set.size === 0 && this.open.get(tokenHash) === set) this.open.delete(tokenHash);
    });
  }

  /**
   * A keep-alive connection now serves something else (a member's request, the API): revoking the
   * link it served before does not end it.
   */
  release(socket: Socket): void {
    const hash = this.linkOf.get(socket);
    if (hash === undefined) return;
    this.linkOf.delete(socket);
    this.open.get(hash)?.delete(socket);
  }

  /** Ends every socket of a link now (this replica). */
  revoke(tokenHash: string): void {
    this.dead.add(tokenHash);
    const set = this.open.get(tokenHash);
    this.open.delete(tokenHash);
    for (const s of set ?? []) s.destroy();
  }

  async onApplicationShutdown(): Promise<void> {
    this.abort.abort();
    // The follow ends on the abort; a NATS connection that is reconnecting may hold it back, and a
    // stopping gateway must not wait for that (nothing is left to revoke for).
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([this.follower, new Promise<void>((r) => (timer = setTimeout(r, 2_000)))]).finally(
      () => clearTimeout(timer),
    );
  }
}
