import type { Outcome } from '../../src/store/types.ts';

/** An outcome of recipient `recipientId` of message m1 (account acct), delivered unless `state` says otherwise. */
export function sampleOutcome(recipientId: number, state: Outcome['state'] = 'delivered'): Outcome {
  return {
    at: 1000,
    recipientId,
    messageId: 'm1',
    accountId: 'acct',
    recipient: `r${recipientId}@one.test`,
    state,
    attempted: true,
    reply: { code: 250, enhanced: '2.0.0', text: 'ok' },
    event: { type: 'delivered', data: { mxHost: 'mx.one.test' } },
  };
}
