import { describe, it } from 'node:test';
import type { RunLogEvent } from '#libs/contracts';
import { DomainError } from '#libs/eventstore';
import { deciderSpec } from '#libs/testing';
import { runLogDecider, type RunLogCommand } from './runlog.decider.js';

const runId = '33333333-3333-4333-8333-333333333333';
const at = '2026-11-28T12:00:00.000Z';
const seal = (lineCount: number, sealedBy: 'worker' | 'logs' = 'worker'): RunLogCommand => ({
  type: 'SealRunLog',
  runId,
  lineCount,
  bytes: lineCount * 10,
  sealedBy,
  sealedAt: at,
});
const sealed = (lineCount: number, sealedBy: 'worker' | 'logs' = 'worker'): RunLogEvent => ({
  type: 'RunLogsSealed',
  data: { runId, lineCount, bytes: lineCount * 10, sealedBy, sealedAt: at },
});
const s = deciderSpec(runLogDecider);

describe('runlog decider', () => {
  it('seals an unsealed log with its final count', () => {
    s.given([])
      .when(seal(42))
      .then([sealed(42)]);
    s.given([])
      .when(seal(0, 'logs'))
      .then([sealed(0, 'logs')]);
  });

  it('seals once: a second seal (same or other count, any sealer) decides nothing', () => {
    s.given([sealed(42)])
      .when(seal(42))
      .thenNothing();
    s.given([sealed(42)])
      .when(seal(7, 'logs'))
      .thenNothing();
    s.given([sealed(0, 'logs')])
      .when(seal(42))
      .thenNothing();
  });

  it('refuses impossible counts', () => {
    s.given([])
      .when(seal(-1))
      .thenThrows(DomainError, /negative/);
  });
});
