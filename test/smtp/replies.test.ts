import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { formatReply, isPositive, replies } from '../../src/smtp/replies.ts';

describe('reply catalogue', () => {
  it('formats a single-line reply with its enhanced code', () => {
    assert.equal(formatReply(replies.relayDenied), '554 5.7.1 Relay access denied\r\n');
    assert.equal(formatReply(replies.authRequired), '530 5.7.0 Authentication required\r\n');
  });

  it('formats a multi-line reply with the enhanced code on every line', () => {
    const text = formatReply({ code: 250, enhanced: '2.0.0', text: 'first\nsecond\nthird' });
    assert.equal(text, '250-2.0.0 first\r\n250-2.0.0 second\r\n250 2.0.0 third\r\n');
  });

  it('leaves the enhanced code off the greeting, EHLO, 334 and 354 (RFC 2034 §3)', () => {
    assert.equal(formatReply(replies.greeting('mx.test')), '220 mx.test ESMTP Postbote\r\n');
    assert.equal(
      formatReply(replies.ehlo('mx.test', ['PIPELINING', 'SIZE 10'])),
      '250-mx.test\r\n250-PIPELINING\r\n250 SIZE 10\r\n',
    );
    assert.equal(formatReply(replies.authContinue), '334 \r\n');
    assert.equal(formatReply(replies.startData), '354 End data with <CR><LF>.<CR><LF>\r\n');
  });

  it('cannot be used to inject an extra reply line through CR or LF in the text', () => {
    const text = formatReply({ code: 550, enhanced: '5.7.1', text: 'bad\r\n250 2.0.0 Ok' });
    assert.equal(text, '550-5.7.1 bad\r\n550 5.7.1 250 2.0.0 Ok\r\n');
    assert.equal(formatReply({ code: 451, text: 'a\rb' }), '451-a\r\n451 b\r\n');
  });

  it('carries the codes the submission policy relies on', () => {
    const expect: [keyof typeof replies, number, string][] = [
      ['authRequired', 530, '5.7.0'],
      ['relayDenied', 554, '5.7.1'],
      ['authPlaintextRefused', 538, '5.7.11'],
      ['authFailed', 535, '5.7.8'],
      ['authLockedOut', 454, '4.7.0'],
      ['tooManyRecipients', 452, '4.5.3'],
      ['badSequence', 503, '5.5.1'],
      ['syntaxError', 500, '5.5.2'],
      ['paramSyntax', 501, '5.5.4'],
      ['tooManyConnections', 421, '4.7.0'],
      ['idleTimeout', 421, '4.4.2'],
      ['serviceUnavailable', 451, '4.3.0'],
      ['storeUnavailable', 451, '4.3.0'],
      ['localError', 451, '4.3.0'],
      ['ok', 250, '2.0.0'],
      ['senderOk', 250, '2.1.0'],
      ['recipientOk', 250, '2.1.5'],
      ['bye', 221, '2.0.0'],
      ['notImplemented', 502, '5.5.1'],
      ['vrfy', 252, '2.5.0'],
      ['tlsNotAvailable', 454, '4.7.0'],
      ['readyTls', 220, '2.0.0'],
      ['invalidAddress', 553, '5.1.3'],
      ['badSenderSyntax', 501, '5.1.7'],
      ['shuttingDown', 421, '4.3.2'],
      ['bareNewlineInData', 550, '5.6.11'],
    ];
    for (const [name, code, enhanced] of expect) {
      const r = replies[name];
      assert.ok(typeof r === 'object', name);
      assert.equal(r.code, code, name);
      assert.equal(r.enhanced, enhanced, name);
    }
    assert.equal(formatReply(replies.queued('abc123')), '250 2.0.0 Ok: queued as abc123\r\n');
    assert.equal(replies.messageTooBig(1000).code, 552);
    assert.equal(replies.messageTooBig(1000).enhanced, '5.3.4');
    assert.match(replies.messageTooBig(1000).text, /1000/);
  });

  it('is frozen, so no module can reword a reply for everyone', () => {
    assert.ok(Object.isFrozen(replies));
    assert.ok(Object.isFrozen(replies.ok));
    assert.throws(() => {
      (replies.ok as { text: string }).text = 'changed';
    });
  });

  it('tells positive from negative replies', () => {
    assert.equal(isPositive(replies.ok), true);
    assert.equal(isPositive(replies.relayDenied), false);
    assert.equal(isPositive(replies.startData), false);
  });
});
