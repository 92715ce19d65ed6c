import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Webhook } from 'standardwebhooks';
import { backoffMs } from '../../src/webhooks/attempt.ts';
import { newWebhookSecret, signedHeaders, verifySignature } from '../../src/webhooks/signing.ts';
import { parseWebhookUrl, resolveTarget, WebhookTargetError } from '../../src/webhooks/target.ts';

describe('webhook signing (Standard Webhooks)', () => {
  it('signs so that the standardwebhooks package verifies, and a changed body does not', () => {
    const secret = newWebhookSecret();
    assert.match(secret, /^whsec_[A-Za-z0-9+/]{43}=$/);
    const body = JSON.stringify({
      type: 'postbote.events',
      data: { events: [{ id: 1, type: 'delivered' }] },
    });
    const headers = signedHeaders(secret, 'msg_1', Math.floor(Date.now() / 1000), body);
    assert.deepEqual(new Webhook(secret).verify(body, headers), JSON.parse(body));
    assert.throws(() => new Webhook(secret).verify(`${body} `, headers));
    assert.throws(() => new Webhook(newWebhookSecret()).verify(body, headers));
    assert.equal(verifySignature(secret, headers, body), true);
    assert.equal(verifySignature(secret, { ...headers, 'webhook-id': 'msg_2' }, body), false);
  });
});

describe('webhook targets (SSRF guard)', () => {
  const strict = { allowPrivate: false, allowHosts: [] as string[] };
  const answers = (addresses: string[]) => async () =>
    addresses.map((address) => ({ address, family: address.includes(':') ? 6 : 4 }));

  it('checks the URL form before any lookup', () => {
    assert.throws(() => parseWebhookUrl('ftp://hooks.example/x'), /http:\/\/ or https:\/\//);
    assert.throws(() => parseWebhookUrl('https://user:pw@hooks.example/x'), /user name or password/);
    assert.throws(() => parseWebhookUrl('not a url'), WebhookTargetError);
    assert.throws(() => parseWebhookUrl(`https://hooks.example/${'a'.repeat(2000)}`), /longer than/);
    assert.equal(parseWebhookUrl('https://hooks.example/in?x=1').hostname, 'hooks.example');
  });

  it('refuses loopback, private, link-local and mapped addresses, literal or resolved', async () => {
    for (const url of [
      'http://127.0.0.1/',
      'http://10.1.2.3/',
      'http://169.254.169.254/latest/meta-data',
      'http://[::1]/',
      'http://[::ffff:127.0.0.1]/',
      'http://[fd00::1]/',
      'http://0.0.0.0/',
    ]) {
      await assert.rejects(resolveTarget(new URL(url), strict), WebhookTargetError, url);
    }
    await assert.rejects(
      resolveTarget(new URL('https://rebind.example/'), strict, answers(['192.168.1.5'])),
      /resolves only to non-public addresses \(192\.168\.1\.5 \(private\)\)/,
    );
  });

  it('connects to a public address it checked; private ones only when allowed', async () => {
    const mixed = answers(['10.0.0.8', '93.184.215.14']);
    assert.deepEqual(await resolveTarget(new URL('https://hooks.example/'), strict, mixed), {
      url: new URL('https://hooks.example/'),
      address: '93.184.215.14',
      family: 4,
    });
    const internal = answers(['10.0.0.8']);
    assert.equal(
      (
        await resolveTarget(
          new URL('https://hooks.internal/'),
          { allowPrivate: false, allowHosts: ['hooks.internal'] },
          internal,
        )
      ).address,
      '10.0.0.8',
    );
    assert.equal(
      (await resolveTarget(new URL('http://127.0.0.1:9/'), { allowPrivate: true, allowHosts: [] })).address,
      '127.0.0.1',
    );
    await assert.rejects(
      resolveTarget(new URL('https://nowhere.example/'), strict, async () => {
        throw Object.assign(new Error('not found'), { code: 'ENOTFOUND' });
      }),
      /cannot resolve nowhere\.example: ENOTFOUND/,
    );
  });
});

describe('webhook retry backoff', () => {
  it('retries first within a minute, doubles, and waits at most an hour (±20 %)', () => {
    const at = (n: number, r: number) => backoffMs(n, 30_000, () => r);
    assert.equal(at(1, 0.5), 30_000);
    assert.ok(at(1, 1) <= 60_000);
    assert.equal(at(2, 0.5), 60_000);
    assert.equal(at(20, 0.5), 3_600_000);
    assert.equal(at(20, 0), 2_880_000);
    // Over 25 h the schedule makes 30 attempts or so: never a storm, never a day of silence.
    let t = 0;
    let n = 0;
    while (t < 25 * 3_600_000) t += at(++n, 0.5);
    assert.ok(n > 25 && n < 40, `${n} attempts`);
  });
});
