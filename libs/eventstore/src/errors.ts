/** Base of every error a decider may throw; carries the HTTP-ish status the edge maps it to. */
export class DomainError extends Error {
  constructor(
    message: string,
    readonly status: 400 | 403 | 404 | 409 | 422 = 400,
    readonly code = 'domain_error',
  ) {
    super(message);
    this.name = 'DomainError';
  }
}

export class NotFoundError extends DomainError {
  constructor(message: string) {
    super(message, 404, 'not_found');
    this.name = 'NotFoundError';
  }
}

export class ConflictError extends DomainError {
  constructor(message: string) {
    super(message, 409, 'conflict');
    this.name = 'ConflictError';
  }
}

/** The aggregate moved on since it was loaded (JetStream API error 10071). */
export class ConcurrencyError extends Error {
  constructor(
    readonly subject: string,
    readonly expectedSequence: number,
    cause?: unknown,
  ) {
    super(`concurrent write on ${subject}: expected last sequence ${expectedSequence}`, { cause });
    this.name = 'ConcurrencyError';
  }
}

export { EventSchemaError } from '#libs/events';
