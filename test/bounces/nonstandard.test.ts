import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { HeaderField } from '../../src/bounces/mime.ts';
import { findReply, readNonStandard } from '../../src/bounces/nonstandard.ts';

const daemon: HeaderField[] = [['From', 'Mail Delivery System <MAILER-DAEMON@mx.example.net>']];

describe('readNonStandard', () => {
  it('takes addresses that open a line as recipients, the lines after them as the reason', () => {
    const got = readNonStandard({
      headers: daemon,
      subject: 'Mail delivery failed',
      text: [
        'This message was created automatically by mail delivery software.',
        '',
        'A message that you sent could not be delivered. The following addresses failed:',
        '',
        '  first@example.org',
        '    SMTP error from remote mail server after RCPT TO:<first@example.org>:',
        '    550 5.1.1 No such user',
        '',
        '  <second@example.org>: host mx.example.org said: 452 4.2.2 Over quota',
        '',
        '------ This is a copy of the message, including all the headers. ------',
        'To: first@example.org, second@example.org',
        'From: shop@shop.test',
      ].join('\n'),
    });
    assert.equal(got?.mta, 'exim');
    assert.equal(got?.delayed, false);
    assert.deepEqual(got?.recipients, [
      {
        email: 'first@example.org',
        code: 550,
        enhanced: '5.1.1',
        diagnostic:
          'SMTP error from remote mail server after RCPT TO:<first@example.org>: 550 5.1.1 No such user',
      },
      {
        email: 'second@example.org',
        code: 452,
        enhanced: '4.2.2',
        diagnostic: 'host mx.example.org said: 452 4.2.2 Over quota',
      },
    ]);
    assert.equal(got?.originalText, 'To: first@example.org, second@example.org\nFrom: shop@shop.test');
  });

  it('never takes the return path, postmaster or MAILER-DAEMON for a failed recipient', () => {
    const got = readNonStandard({
      headers: daemon,
      subject: 'Undeliverable',
      text: 'b+TOKEN@pb-bounces.shop.test\npostmaster@mx.example.net\nMAILER-DAEMON@mx.example.net\nreal@example.org\n  550 unknown',
      exclude: ['b+TOKEN@pb-bounces.shop.test'],
    });
    assert.deepEqual(
      got?.recipients.map((r) => r.email),
      ['real@example.org'],
    );
  });

  it('a later line naming a known recipient adds to its reason (Sendmail transcripts)', () => {
    const got = readNonStandard({
      headers: daemon,
      subject: 'Returned mail: see transcript for details',
      text:
        '   ----- The following addresses had permanent fatal errors -----\n<a@example.org>\n\n\n' +
        '   ----- Transcript of session follows -----\n>>> RCPT To:<a@example.org>\n<<< 550 5.1.1 <a@example.org>... User unknown\n',
    });
    assert.equal(got?.mta, 'sendmail');
    assert.deepEqual(
      got?.recipients.map((r) => [r.email, r.code, r.enhanced]),
      [['a@example.org', 550, '5.1.1']],
    );
  });

  it('recognises a delay warning', () => {
    const got = readNonStandard({
      headers: daemon,
      subject: 'Warning: message delayed',
      text: 'This is the mail system at host relay.example.\n\n# THIS IS A WARNING ONLY. #\n\n<slow@example.org>: connect to mx: Connection timed out\n',
    });
    assert.deepEqual(
      [got?.mta, got?.delayed, got?.recipients[0]?.email],
      ['postfix', true, 'slow@example.org'],
    );
  });

  it('needs the MTA’s wording, or a daemon sender with a bounce subject', () => {
    assert.equal(
      readNonStandard({ headers: [], subject: 'Hello', text: 'someone@example.org\nwrote something' }),
      undefined,
    );
    assert.equal(
      readNonStandard({ headers: daemon, subject: 'Your weekly report', text: 'nothing failed' }),
      undefined,
    );
    assert.equal(
      readNonStandard({ headers: [], subject: 'Undeliverable: x', text: 'no address here' }),
      undefined,
    );
    const bare = readNonStandard({
      headers: daemon,
      subject: 'Undelivered Mail Returned to Sender',
      text: 'Something failed.',
    });
    assert.deepEqual([bare?.mta, bare?.recipients], ['generic', []]);
  });
});

describe('findReply', () => {
  it('finds the reply code and status a diagnostic quotes', () => {
    assert.deepEqual(findReply('Remote host said: 550 5.1.1 <x@y>: no such user'), {
      code: 550,
      enhanced: '5.1.1',
    });
    assert.deepEqual(findReply('mx.example.org #550 5.2.2 mailbox full ##'), {
      code: 550,
      enhanced: '5.2.2',
    });
    assert.deepEqual(findReply('Sorry, no mailbox here by that name. (#5.1.1)'), { enhanced: '5.1.1' });
    assert.deepEqual(findReply('<<< 554 delivery error'), { code: 554 });
    assert.deepEqual(findReply('554: delivery error: dd This user does not have an account'), { code: 554 });
  });

  it('ignores IP addresses, and a status whose class disagrees with the code', () => {
    assert.deepEqual(findReply('host mx [192.0.2.45] refused'), {});
    assert.deepEqual(findReply('said: 550 but 4.2.2 later'), { code: 550 });
  });
});
