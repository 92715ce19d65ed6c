import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { recipientDomain } from '../../src/intake/address.ts';
import { headerLength, readHeaders, removeHeaders } from '../../src/intake/headers.ts';
import { prepareMessage } from '../../src/intake/prepare.ts';

const trace = {
  heloName: 'client.example',
  clientIp: '192.0.2.7',
  protocol: 'ESMTPSA',
  hostname: 'relay.example.net',
  queueId: '0123456789abcdefghjk',
  now: new Date('2026-11-28T12:00:00Z'),
};

describe('intake: prepare', () => {
  it('adds Received, Message-ID and Date when missing; leaves the body alone', () => {
    const raw = Buffer.from(
      'From: a@example.com\r\nSubject: =?utf-8?q?Gr=C3=BC=C3=9Fe?=\r\n\r\nbody line\r\n.dot\r\n',
    );
    const out = prepareMessage(raw, { ...trace, recipient: 'b@example.org' });
    const text = out.body.toString();
    assert.equal(
      readHeaders(out.body)[0]?.[1],
      'from client.example ([192.0.2.7]) by relay.example.net (Postbote) with ESMTPSA id 0123456789abcdefghjk ' +
        'for <b@example.org>; Sat, 28 Nov 2026 12:00:00 +0000',
    );
    assert.ok(
      text.split('\r\n').every((line) => line.length <= 78),
      'header lines folded',
    );
    assert.match(
      text,
      /\r\nMessage-ID: <0123456789abcdefghjk\.[0-9a-hjkmnp-tv-z]{10}@relay\.example\.net>\r\n/,
    );
    assert.match(text, /\r\nDate: Sat, 28 Nov 2026 12:00:00 \+0000\r\n/);
    assert.ok(
      out.body.subarray(out.body.length - raw.length).equals(raw),
      'original bytes kept verbatim at the end',
    );
    assert.equal(out.subject, 'Grüße');
  });

  it('keeps an existing Message-ID and Date and reports them', () => {
    const raw = Buffer.from(
      'Message-ID: <x@y>\r\nDate: Mon, 1 Jan 2024 00:00:00 +0000\r\nSubject: hi\r\n\r\nhello\r\n',
    );
    const out = prepareMessage(raw, trace);
    assert.equal(out.messageIdHeader, '<x@y>');
    assert.equal((out.body.toString().match(/^Date:/gim) ?? []).length, 1);
    assert.doesNotMatch(out.body.toString(), /for </, 'no recipient disclosed without a single recipient');
  });

  it('handles a message without headers or body', () => {
    const out = prepareMessage(Buffer.from('just text without header separator'), trace);
    assert.ok(headerLength(out.body) > 0);
    assert.ok(readHeaders(out.body).some(([n]) => n === 'received'));
  });

  it('unfolds folded header fields', () => {
    const fields = readHeaders(Buffer.from('Subject: one\r\n two\r\nX-A: b\r\n\r\n'));
    assert.deepEqual(fields, [
      ['subject', 'one two'],
      ['x-a', 'b'],
    ]);
  });

  it('removes every X-Postbote-Stream field with its continuation lines, every other byte kept', () => {
    const head =
      'From: a@example.com\r\nX-Postbote-Stream:\r\n\tnews\r\nX-Keep: 1\r\n x-postbote-stream: no\r\n';
    const rest = 'x-POSTBOTE-stream : other\r\nSubject: s\r\n\r\nX-Postbote-Stream: body line\r\n';
    const raw = Buffer.from(head + rest, 'latin1');
    assert.equal(
      removeHeaders(raw, 'x-postbote-stream').toString('latin1'),
      'From: a@example.com\r\nX-Keep: 1\r\n x-postbote-stream: no\r\nSubject: s\r\n\r\nX-Postbote-Stream: body line\r\n',
      'the folded continuation of X-Keep stays; the body is not headers',
    );
    const only = Buffer.from('X-Postbote-Stream: news\r\n\r\nbody\r\n');
    assert.equal(removeHeaders(only, 'x-postbote-stream').toString(), '\r\nbody\r\n');
    const none = Buffer.from('Subject: s\r\n\r\nbody\r\n');
    assert.equal(removeHeaders(none, 'x-postbote-stream'), none, 'untouched: the same buffer');
    const out = prepareMessage(raw, trace);
    assert.equal(out.streamHeader, 'news');
    assert.doesNotMatch(
      out.body.subarray(0, headerLength(out.body)).toString(),
      /postbote-stream :|Stream:\r\n/i,
    );
    assert.equal(prepareMessage(none, trace).streamHeader, undefined);
  });

  it('normalises recipient domains: case, IDN to punycode, literals; refuses unusable ones', () => {
    assert.equal(recipientDomain('User@Example.COM'), 'example.com');
    assert.equal(recipientDomain('a@bücher.example'), 'xn--bcher-kva.example');
    assert.equal(recipientDomain('a@[127.0.0.2]'), '[127.0.0.2]');
    assert.equal(recipientDomain('a@example.com.'), 'example.com');
    assert.equal(recipientDomain('nodomain'), undefined);
    assert.equal(recipientDomain('a@localhost'), undefined);
    assert.equal(recipientDomain('a@exa mple.com'), undefined);
    assert.equal(recipientDomain('a@[999.1.1.1]'), undefined);
  });
});
