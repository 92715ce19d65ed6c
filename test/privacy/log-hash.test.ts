import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { describe, it } from 'node:test';
import { createLogger } from '../../src/observability/logger.ts';

function capture(hashRecipients?: Buffer) {
  const lines: Record<string, unknown>[] = [];
  const destination = new Writable({
    write(chunk, _enc, done) {
      for (const line of String(chunk).split('\n').filter(Boolean)) lines.push(JSON.parse(line));
      done();
    },
  });
  const logger = createLogger({ level: 'info', destination, ...(hashRecipients ? { hashRecipients } : {}) });
  return { logger, lines };
}

describe('log.hash_recipients', () => {
  it('logs recipient fields as a keyed hash, the same for the same address, at the top and one level down', () => {
    const { logger, lines } = capture(Buffer.from('k'.repeat(32)));
    logger.info({ recipient: 'Bob@Example.org', messageId: 'm1', nested: { to: 'bob@example.org' } }, 'x');
    logger.info({ recipients: ['bob@example.org', 'eve@example.org'] }, 'y');
    const [a, b] = lines;
    assert.ok(a && b);
    assert.match(String(a.recipient), /^h:[0-9a-f]{16}$/);
    assert.equal((a.nested as { to: string }).to, a.recipient);
    assert.equal(a.messageId, 'm1');
    assert.deepEqual((b.recipients as string[])[0], a.recipient);
    assert.ok(!JSON.stringify(lines).toLowerCase().includes('bob@example.org'));
  });

  it('leaves addresses alone when off', () => {
    const { logger, lines } = capture();
    logger.info({ recipient: 'bob@example.org' }, 'x');
    assert.equal(lines[0]?.recipient, 'bob@example.org');
  });
});
