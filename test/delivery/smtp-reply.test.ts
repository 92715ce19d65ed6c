import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { classifyReply, formatReply, parseReply, replyFromError } from '../../src/delivery/smtp-reply.ts';

const peer = { host: 'mx1.example.com', ip: '127.0.0.2', port: 25 };

/** A nodemailer-shaped error, as SMTPConnection hands it over. */
function nmError(fields: Record<string, unknown> & { message: string }): Error {
  return Object.assign(new Error(fields.message), fields);
}

describe('parseReply', () => {
  it('parses a Gmail multiline 550 5.1.1 into one line of text', () => {
    const raw = [
      '550-5.1.1 The email account that you tried to reach does not exist. Please try',
      "550-5.1.1 double-checking the recipient's email address for typos or",
      '550-5.1.1 unnecessary spaces. For more information, go to',
      '550 5.1.1  https://support.google.com/mail/?p=NoSuchUser 41be03b00d2f7-b6a2c1 - gsmtp',
    ].join('\n');
    assert.deepEqual(parseReply(raw), {
      code: 550,
      enhanced: '5.1.1',
      text:
        "The email account that you tried to reach does not exist. Please try double-checking the recipient's " +
        'email address for typos or unnecessary spaces. For more information, go to ' +
        'https://support.google.com/mail/?p=NoSuchUser 41be03b00d2f7-b6a2c1 - gsmtp',
    });
  });

  it('parses temporary replies', () => {
    assert.deepEqual(parseReply('421 4.7.0 Try again later, closing connection. (EHLO) - gsmtp'), {
      code: 421,
      enhanced: '4.7.0',
      text: 'Try again later, closing connection. (EHLO) - gsmtp',
    });
    assert.deepEqual(parseReply('452 4.2.2 The email account that you tried to reach is over quota.\r\n'), {
      code: 452,
      enhanced: '4.2.2',
      text: 'The email account that you tried to reach is over quota.',
    });
  });

  it('accepts three-digit subject and detail (RFC 3463)', () => {
    assert.deepEqual(parseReply('550 5.7.509 Access denied, sending domain does not pass DMARC'), {
      code: 550,
      enhanced: '5.7.509',
      text: 'Access denied, sending domain does not pass DMARC',
    });
  });

  it('leaves replies without an enhanced code as text', () => {
    assert.deepEqual(parseReply('250 Ok: queued as 4BYx2m0Lq9z9rwd'), {
      code: 250,
      text: 'Ok: queued as 4BYx2m0Lq9z9rwd',
    });
    assert.deepEqual(parseReply('554 mail.example.net ESMTP not accepting messages'), {
      code: 554,
      text: 'mail.example.net ESMTP not accepting messages',
    });
    assert.deepEqual(parseReply('250'), { code: 250, text: '' });
  });

  it('ignores an enhanced code whose class disagrees with the reply code', () => {
    assert.deepEqual(parseReply('250 5.0.0 looks odd'), { code: 250, text: '5.0.0 looks odd' });
    assert.deepEqual(parseReply('451 5.7.1 greylisted'), { code: 451, text: '5.7.1 greylisted' });
  });

  it('does not mistake a version number or IP for an enhanced code', () => {
    assert.deepEqual(parseReply('554 5.7.1.2 nope'), { code: 554, text: '5.7.1.2 nope' });
    assert.deepEqual(parseReply('550 5.1.1234 nope'), { code: 550, text: '5.1.1234 nope' });
  });

  it('returns code 0 and the raw text for garbage', () => {
    assert.deepEqual(parseReply('HTTP/1.1 400 Bad Request\r\nServer: nginx'), {
      code: 0,
      text: 'HTTP/1.1 400 Bad Request Server: nginx',
    });
    assert.deepEqual(parseReply(''), { code: 0, text: '' });
    assert.deepEqual(parseReply('99 too short'), { code: 0, text: '99 too short' });
    assert.deepEqual(parseReply('650 6.0.0 no such class'), { code: 0, text: '650 6.0.0 no such class' });
  });
});

describe('classifyReply', () => {
  it('maps reply classes to outcomes', () => {
    const cases: Array<[number, string]> = [
      [250, 'delivered'],
      [251, 'delivered'],
      [421, 'temporary'],
      [452, 'temporary'],
      [550, 'permanent'],
      [554, 'permanent'],
      [354, 'temporary'],
      [0, 'temporary'],
    ];
    for (const [code, outcome] of cases) {
      assert.equal(classifyReply({ code, text: '' }), outcome, `code ${code}`);
    }
  });
});

describe('formatReply', () => {
  it('renders code, enhanced code and text on one line', () => {
    assert.equal(
      formatReply({ code: 550, enhanced: '5.1.1', text: 'no such user' }),
      '550 5.1.1 no such user',
    );
    assert.equal(formatReply({ code: 250, text: 'Ok' }), '250 Ok');
    assert.equal(formatReply({ code: 0, text: 'garbage' }), 'garbage');
  });
});

describe('replyFromError', () => {
  it('names a refused connection and keeps the original message', () => {
    const err = nmError({
      message: 'connect ECONNREFUSED 127.0.0.2:25',
      code: 'ESOCKET',
      originalCode: 'ECONNREFUSED',
      command: 'CONN',
    });
    const { reply, outcome } = replyFromError(err, peer, 'session');
    assert.equal(outcome, 'temporary');
    assert.deepEqual(reply, {
      code: 421,
      enhanced: '4.4.1',
      text: 'connection refused by mx1.example.com[127.0.0.2]:25 (connect ECONNREFUSED 127.0.0.2:25)',
    });
  });

  it('uses 4.4.2 for timeouts and dropped connections', () => {
    const greeting = replyFromError(
      nmError({ message: 'Greeting never received', code: 'ETIMEDOUT', timeoutType: 'GREETING_TIMEOUT' }),
      peer,
      'session',
    );
    assert.equal(greeting.reply.enhanced, '4.4.2');
    assert.match(greeting.reply.text, /greeting from mx1\.example\.com\[127\.0\.0\.2\]:25 \(Greeting never/);

    const socket = replyFromError(
      nmError({ message: 'Timeout', code: 'ETIMEDOUT', timeoutType: 'SOCKET_TIMEOUT' }),
      peer,
      'transaction',
    );
    assert.deepEqual([socket.reply.code, socket.reply.enhanced, socket.outcome], [421, '4.4.2', 'temporary']);

    const dropped = replyFromError(
      nmError({ message: 'Connection closed unexpectedly', code: 'ECONNECTION' }),
      peer,
      'transaction',
    );
    assert.deepEqual([dropped.reply.enhanced, dropped.outcome], ['4.4.2', 'temporary']);
  });

  it('uses 4.4.1 for a connect timeout', () => {
    const { reply } = replyFromError(
      nmError({ message: 'Connection timeout', code: 'ETIMEDOUT', timeoutType: 'CONNECT_TIMEOUT' }),
      peer,
      'session',
    );
    assert.equal(reply.enhanced, '4.4.1');
  });

  it('reports a TLS handshake failure as temporary 4.7.5', () => {
    const { reply, outcome } = replyFromError(
      nmError({ message: 'Error initiating TLS - wrong version number', code: 'ETLS' }),
      peer,
      'session',
    );
    assert.deepEqual([reply.code, reply.enhanced, outcome], [421, '4.7.5', 'temporary']);
    assert.match(reply.text, /wrong version number/);
  });

  it('names a refused STARTTLS when TLS is required', () => {
    const { reply, outcome } = replyFromError(
      nmError({
        message: 'Error upgrading connection with STARTTLS: 502 5.5.1 Unrecognized command',
        code: 'ETLS',
        response: '502 5.5.1 Unrecognized command',
        responseCode: 502,
      }),
      peer,
      'session',
    );
    assert.equal(outcome, 'temporary');
    assert.deepEqual([reply.code, reply.enhanced], [421, '4.7.4']);
    assert.match(reply.text, /502 5\.5\.1 Unrecognized command/);
  });

  it('keeps the server reply of a failed greeting but makes it temporary', () => {
    const { reply, outcome } = replyFromError(
      nmError({
        message: 'Invalid greeting. response=554 5.7.1 No SMTP service here',
        code: 'EPROTOCOL',
        response: '554 5.7.1 No SMTP service here',
      }),
      peer,
      'session',
    );
    assert.deepEqual(reply, { code: 554, enhanced: '5.7.1', text: 'No SMTP service here' });
    assert.equal(outcome, 'temporary');
  });

  it('classifies a transaction reply by its code', () => {
    const permanent = replyFromError(
      nmError({ message: 'Message failed', code: 'EMESSAGE', response: '554 5.7.1 Spam detected' }),
      peer,
      'transaction',
    );
    assert.equal(permanent.outcome, 'permanent');
    const temporary = replyFromError(
      nmError({ message: 'Data command failed', code: 'EENVELOPE', response: '451 4.3.0 Try later' }),
      peer,
      'transaction',
    );
    assert.equal(temporary.outcome, 'temporary');
  });

  it('synthesises a protocol error for a garbage reply', () => {
    const { reply, outcome } = replyFromError(
      nmError({ message: 'Invalid greeting', code: 'EPROTOCOL', response: 'SSH-2.0-OpenSSH_9.6' }),
      peer,
      'session',
    );
    assert.deepEqual([reply.code, reply.enhanced, outcome], [421, '4.5.0', 'temporary']);
  });

  it('treats a message over the advertised SIZE as permanent', () => {
    const { reply, outcome } = replyFromError(
      nmError({ message: 'Message size larger than allowed 1000', code: 'EMESSAGE', command: 'MAIL FROM' }),
      peer,
      'transaction',
    );
    assert.deepEqual([reply.code, reply.enhanced, outcome], [552, '5.3.4', 'permanent']);
  });

  it('never makes a session failure permanent', () => {
    const samples: unknown[] = [
      nmError({ message: 'boom', code: 'EMESSAGE' }),
      nmError({ message: 'x', code: 'EAUTH', response: '535 5.7.8 Authentication failed' }),
      'a string',
      undefined,
    ];
    for (const sample of samples) {
      assert.equal(replyFromError(sample, peer, 'session').outcome, 'temporary');
    }
  });

  it('omits the host name when connecting to a bare IP', () => {
    const { reply } = replyFromError(
      nmError({ message: 'connect ECONNREFUSED', code: 'ESOCKET', originalCode: 'ECONNREFUSED' }),
      { host: '192.0.2.7', ip: '192.0.2.7', port: 2525 },
      'session',
    );
    assert.match(reply.text, /^connection refused by \[192\.0\.2\.7\]:2525/);
  });
});
