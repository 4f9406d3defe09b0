export interface SseEvent {
  event: string;
  id: string | undefined;
  data: string;
  /** Date.now() when it arrived. */
  at: number;
}

/** Reads a text/event-stream until it ends (or `timeoutMs`), collecting its events. */
export async function readSse(
  url: string,
  token: string,
  opts: { timeoutMs?: number; onEvent?: (e: SseEvent) => void; onOpen?: (at: number) => void } = {},
): Promise<{ status: number; events: SseEvent[]; body?: string }> {
  const ac = new AbortController();
  const timer = setTimeout(() => ac.abort(), opts.timeoutMs ?? 60_000);
  try {
    const res = await fetch(url, {
      headers: { authorization: `Bearer ${token}`, accept: 'text/event-stream' },
      signal: ac.signal,
    });
    if (res.status !== 200 || !res.body) return { status: res.status, events: [], body: await res.text() };
    opts.onOpen?.(Date.now());
    const events: SseEvent[] = [];
    const decoder = new TextDecoder();
    let buf = '';
    for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
      buf += decoder.decode(chunk, { stream: true });
      for (;;) {
        const i = buf.indexOf('\n\n');
        if (i < 0) break;
        const block = buf.slice(0, i);
        buf = buf.slice(i + 2);
        let event = 'message';
        let id: string | undefined;
        const data: string[] = [];
        for (const line of block.split('\n')) {
          if (line.startsWith(':')) continue;
          const c = line.indexOf(':');
          const field = c < 0 ? line : line.slice(0, c);
          const value = c < 0 ? '' : line.slice(c + 1).replace(/^ /, '');
          if (field === 'event') event = value;
          else if (field === 'id') id = value;
          else if (field === 'data') data.push(value);
        }
        if (data.length === 0 && id === undefined && event === 'message') continue;
        const e = { event, id, data: data.join('\n'), at: Date.now() };
        events.push(e);
        opts.onEvent?.(e);
      }
    }
    return { status: res.status, events };
  } finally {
    clearTimeout(timer);
  }
}
