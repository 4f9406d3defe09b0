/**
 * True for the errors of a NATS request or JetStream API call that a retry may cure: no answer in
 * time, no responder (a stream or consumer leader being elected, a node restarting), a connection
 * being re-established, JetStream temporarily unavailable (error 10008). Not for errors the server
 * decided (wrong sequence, permissions, bad request) nor for a connection this process closed.
 * Looks through `cause` chains (wrapped errors).
 */
export function isTransientNatsError(err: unknown): boolean {
  for (let e: unknown = err, depth = 0; e instanceof Error && depth < 5; e = e.cause, depth++) {
    if (['TimeoutError', 'NoRespondersError', 'RequestError', 'ConnectionError'].includes(e.name))
      return true;
    if ('code' in e && (e.code === 10008 || e.code === 503 || e.code === '503')) return true;
    if (
      /\b(timeout|timed out|no responders|temporarily unavailable|jetstream is not enabled|leadership change|connection (lost|refused))\b/i.test(
        e.message,
      )
    )
      return true;
  }
  return false;
}
