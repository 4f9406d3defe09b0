import assert from 'node:assert/strict';
import type { Decider } from '#libs/eventstore';

/**
 * Given/when/then for deciders:
 *   spec(decider).given([e1, e2]).when(cmd).then([e3])
 *   spec(decider).given([]).when(cmd).thenThrows(NotFoundError, /no such/)
 */
export function deciderSpec<S, C, E>(decider: Decider<S, C, E>) {
  return {
    given(events: readonly E[]) {
      return {
        when(command: C) {
          const run = () => decider.decide(command, events.reduce(decider.evolve, decider.initialState()));
          return {
            then(expected: readonly E[]) {
              assert.deepStrictEqual(run(), expected);
            },
            thenNothing() {
              assert.deepStrictEqual(run(), []);
            },
            thenThrows(errorClass: new (...args: never[]) => Error, message?: RegExp) {
              assert.throws(run, (err: unknown) => {
                assert.ok(err instanceof errorClass, `expected ${errorClass.name}, got ${String(err)}`);
                if (message) assert.match((err as Error).message, message);
                return true;
              });
            },
          };
        },
      };
    },
  };
}
