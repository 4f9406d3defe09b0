/**
 * A pass that repeats in the background until stopped (schedulers, notifiers, sweepers): one pass
 * at a time, the next after `delayMs()` (asked after each pass, so it can follow a deadline), a
 * failed pass reported and retried at the next turn. `stop` waits for the pass under way.
 */
export class PeriodicTask {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private stopped = true;

  constructor(
    private readonly pass: () => Promise<void>,
    private readonly delayMs: () => number,
    private readonly onError: (err: unknown) => void,
  ) {}

  get active(): boolean {
    return !this.stopped;
  }

  start(): void {
    if (!this.stopped) return;
    this.stopped = false;
    const loop = () => {
      if (this.stopped) return;
      this.running = this.pass()
        .catch((err: unknown) => this.onError(err))
        .finally(() => {
          this.running = undefined;
          if (!this.stopped) this.timer = setTimeout(loop, Math.max(0, this.delayMs()));
        });
    };
    loop();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    await this.running;
  }
}
