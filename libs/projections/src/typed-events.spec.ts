import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { z } from 'zod';
import { defineEvent, type StoredEvent } from '#libs/eventstore';
import { eventsOf } from './typed-events.js';

const Opened = defineEvent('Opened', z.object({ name: z.string() }));
const Closed = defineEvent('Closed', z.object({ reason: z.string(), at: z.number() }));

const stored = (type: string, data: unknown, seq: number): StoredEvent => ({
  type,
  data,
  seq,
  index: 0,
  aggregate: { workspaceId: 'w', type: 'door', id: 'd1' },
  time: '2026-01-01T00:00:00.000Z',
  actor: 't',
  commandId: `c${seq}`,
  correlationId: `c${seq}`,
});

describe('eventsOf: typed events for projections, without casts', () => {
  it('gives the type names, and selects the events of those types, in order, narrowed by type', () => {
    const handled = eventsOf(Opened, Closed);
    assert.deepEqual(handled.types, ['Opened', 'Closed']);
    const events = [
      stored('Opened', { name: 'front' }, 1),
      stored('Painted', { colour: 'red' }, 2),
      stored('Closed', { reason: 'night', at: 5 }, 3),
    ];
    const seen: string[] = [];
    for (const e of handled.select(events)) {
      switch (e.type) {
        case 'Opened':
          seen.push(`opened ${e.data.name}`);
          break;
        case 'Closed':
          seen.push(`closed ${e.data.reason} at ${e.data.at + 1}`);
          break;
        default: {
          const never: never = e;
          throw new Error(`unexpected ${String(never)}`);
        }
      }
    }
    assert.deepEqual(seen, ['opened front', 'closed night at 6']);
    assert.equal(handled.is(events[1]!), false);
  });
});
