import { useCallback, useEffect, useRef, useState, type ReactNode } from 'react';
import { errorStatus, errorText } from './api.js';

/** One request's state: loading, its value or its error in words; `reload` asks again. */
export interface Async<T> {
  loading: boolean;
  value: T | undefined;
  error: string | undefined;
  /** The HTTP status of the error (0: no answer). */
  status: number | undefined;
  reload: () => void;
  /** Replaces the value (a live update). */
  set: (v: T) => void;
}

export function useAsync<T>(load: () => Promise<T>, deps: readonly unknown[]): Async<T> {
  const [state, setState] = useState<{ loading: boolean; value?: T; error?: string; status?: number }>({
    loading: true,
  });
  const [tick, setTick] = useState(0);
  const loadRef = useRef(load);
  loadRef.current = load;
  useEffect(() => {
    let live = true;
    setState((s) => ({ ...s, loading: true }));
    loadRef.current().then(
      (value) => live && setState({ loading: false, value }),
      (err: unknown) => live && setState({ loading: false, error: errorText(err), status: errorStatus(err) }),
    );
    return () => {
      live = false;
    };
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [...deps, tick]);
  const reload = useCallback(() => setTick((t) => t + 1), []);
  const set = useCallback((value: T) => setState({ loading: false, value }), []);
  return {
    loading: state.loading,
    value: state.value,
    error: state.error,
    status: state.status,
    reload,
    set,
  };
}

/** An action button's state: busy while it runs, its error in words. */
export function useAction() {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string>();
  const run = useCallback(async <T,>(fn: () => Promise<T>): Promise<T | undefined> => {
    setBusy(true);
    setError(undefined);
    try {
      return await fn();
    } catch (err) {
      setError(errorText(err));
      return undefined;
    } finally {
      setBusy(false);
    }
  }, []);
  return { busy, error, run, setError };
}

export function Loading({ what }: { what: string }) {
  return (
    <p className="loading" role="status" aria-live="polite">
      <span className="spinner" aria-hidden="true" /> Loading {what}…
    </p>
  );
}

export function ErrorBox({ error, onRetry }: { error: string | undefined; onRetry?: () => void }) {
  if (!error) return null;
  return (
    <div className="error" role="alert">
      <span>{error}</span>
      {onRetry && (
        <button type="button" className="link" onClick={onRetry}>
          Try again
        </button>
      )}
    </div>
  );
}

export function Empty({ children }: { children: ReactNode }) {
  return <div className="empty">{children}</div>;
}

/** Loading, error or the content of a request. */
export function Show<T>({ a, what, children }: { a: Async<T>; what: string; children: (v: T) => ReactNode }) {
  if (a.error) return <ErrorBox error={a.error} onRetry={a.reload} />;
  if (a.value === undefined) return <Loading what={what} />;
  return <>{children(a.value)}</>;
}

export function StatusBadge({ status }: { status: string }) {
  return <span className={`badge status-${status}`}>{status}</span>;
}

export function formatTime(iso: string | null | undefined): string {
  if (!iso) return '—';
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return iso;
  return d.toLocaleString(undefined, {
    year: 'numeric',
    month: 'short',
    day: 'numeric',
    hour: '2-digit',
    minute: '2-digit',
    second: '2-digit',
  });
}

export function relativeTime(iso: string | null | undefined, now = Date.now()): string {
  if (!iso) return '—';
  const s = Math.round((new Date(iso).getTime() - now) / 1000);
  const abs = Math.abs(s);
  const [n, unit] =
    abs < 60
      ? [abs, 's']
      : abs < 3600
        ? [Math.round(abs / 60), 'min']
        : abs < 86400
          ? [Math.round(abs / 3600), 'h']
          : [Math.round(abs / 86400), 'd'];
  return s < 0 ? `${n} ${unit} ago` : `in ${n} ${unit}`;
}

export function formatDuration(ms: number | null | undefined): string {
  if (ms === null || ms === undefined) return '—';
  if (ms < 1000) return `${ms} ms`;
  const s = ms / 1000;
  if (s < 60) return `${s.toFixed(1)} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} min ${Math.round(s % 60)} s`;
  return `${Math.floor(m / 60)} h ${m % 60} min`;
}

export function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
  return `${(n / 1024 / 1024).toFixed(1)} MiB`;
}

export function PageHeader({ title, children }: { title: string; children?: ReactNode }) {
  useEffect(() => {
    document.title = `${title} · Runway`;
  }, [title]);
  // After a navigation (focus left on the link that was followed, or nowhere), move focus to the
  // new page's title so keyboard and screen-reader users start reading there.
  useEffect(() => {
    const active = document.activeElement;
    if (!active || active === document.body || active.closest('nav, .topbar, table, .cards')) {
      document.getElementById('page-title')?.focus({ preventScroll: true });
    }
  }, []);
  return (
    <header className="page-header">
      <h1 tabIndex={-1} id="page-title">
        {title}
      </h1>
      {children && <div className="actions">{children}</div>}
    </header>
  );
}

/** An error in words (for hooks that keep their own state). */
export const errorBoxText = errorText;
