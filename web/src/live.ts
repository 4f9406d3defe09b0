import { useEffect, useRef, useState } from 'react';
import type { DashboardMessage } from '../../libs/client/src/dashboard.js';
import { dashboard } from './api.js';

export type LiveState = 'connecting' | 'live' | 'reconnecting';

/**
 * The workspace's live updates over SSE (docs/dashboard-api.md §2), reconnecting with backoff;
 * `onMessage` sees every message (the page refetches or patches what it touches).
 */
export function useLiveEvents(ws: string, onMessage: (m: DashboardMessage) => void): LiveState {
  const [state, setState] = useState<LiveState>('connecting');
  const handler = useRef(onMessage);
  useEffect(() => {
    handler.current = onMessage;
  });
  useEffect(() => {
    const ac = new AbortController();
    let delay = 500;
    const loop = async () => {
      while (!ac.signal.aborted) {
        try {
          await dashboard.streamEvents(
            ws,
            (m) => {
              if (m.type === 'ready') {
                setState('live');
                delay = 500;
              }
              handler.current(m);
            },
            { signal: ac.signal },
          );
        } catch {
          /* dropped: retried below */
        }
        if (ac.signal.aborted) return;
        setState('reconnecting');
        await new Promise((r) => setTimeout(r, delay));
        delay = Math.min(delay * 2, 10_000);
      }
    };
    void loop();
    return () => ac.abort();
  }, [ws]);
  return state;
}

/** Calls `fn` at most once per `ms` (trailing): many events, one refetch. */
export function useDebounced(fn: () => void, ms: number): () => void {
  const f = useRef(fn);
  const t = useRef<ReturnType<typeof setTimeout> | undefined>(undefined);
  useEffect(() => {
    f.current = fn;
  });
  useEffect(() => () => clearTimeout(t.current), []);
  return useRef(() => {
    if (t.current !== undefined) return;
    t.current = setTimeout(() => {
      t.current = undefined;
      f.current();
    }, ms);
  }).current;
}
