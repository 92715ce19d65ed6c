import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import Fastify from 'fastify';
import type { Engagement } from '../../src/tracking/engagement.ts';
import type { TrackingHosts } from '../../src/tracking/hosts.ts';
import { isOneClick, PIXEL, registerTrackingRoutes } from '../../src/tracking/routes.ts';
import { signToken, type TrackingToken, trackingKey } from '../../src/tracking/token.ts';

const key = trackingKey(Buffer.alloc(32, 3));
const MESSAGE = '01jd5x3k0f8n2pq4r6st';

async function app() {
  const recorded: { kind: string; method: string; via?: string }[] = [];
  const engagement = {
    record: async (t: TrackingToken, r: { method: string }) => {
      recorded.push({ kind: t.kind, method: r.method });
      return true;
    },
    unsubscribe: async (t: TrackingToken, r: { method: string; via: string }) => {
      recorded.push({ kind: t.kind, method: r.method, via: r.via });
      return 'a@example.test';
    },
  } as unknown as Engagement;
  const hosts = { isTrackingHost: (h: string) => h === 'pb-track.shop.test' } as unknown as TrackingHosts;
  const server = Fastify();
  server.get('/healthz', async () => ({ ok: true }));
  registerTrackingRoutes(server, { engagement, hosts, key });
  await server.ready();
  return { server, recorded };
}

const click = signToken(
  { kind: 'click', messageId: MESSAGE, recipient: 0, link: 0, url: 'https://shop.test/a?b=1' },
  key,
);
const open = signToken({ kind: 'open', messageId: MESSAGE, recipient: 0 }, key);
const unsubscribe = signToken({ kind: 'unsubscribe', messageId: MESSAGE, recipient: 0 }, key);

describe('tracking endpoints', () => {
  it('pixel: a 1×1 GIF, never cached; click: 302 to the signed URL', async () => {
    const { server, recorded } = await app();
    const pixel = await server.inject({ method: 'GET', url: `/o/${open}.gif` });
    assert.equal(pixel.statusCode, 200);
    assert.equal(pixel.headers['content-type'], 'image/gif');
    assert.match(String(pixel.headers['cache-control']), /no-store/);
    assert.deepEqual(pixel.rawPayload, PIXEL);
    const redirect = await server.inject({ method: 'GET', url: `/c/${click}` });
    assert.equal(redirect.statusCode, 302);
    assert.equal(redirect.headers.location, 'https://shop.test/a?b=1');
    assert.deepEqual(recorded, [
      { kind: 'open', method: 'GET' },
      { kind: 'click', method: 'GET' },
    ]);
  });

  it('a tampered or misplaced token is 404 and records nothing', async () => {
    const { server, recorded } = await app();
    const tampered = `${click.slice(0, 10)}${click[10] === 'A' ? 'B' : 'A'}${click.slice(11)}`;
    for (const url of [
      `/c/${tampered}`,
      `/c/${open}`,
      `/o/${open}`,
      `/o/${click}.gif`,
      `/u/${open}`,
      '/c/',
      '/c/x.y',
    ]) {
      assert.equal((await server.inject({ method: 'GET', url })).statusCode, 404, url);
    }
    assert.equal(
      (
        await server.inject({
          method: 'POST',
          url: `/u/${click}`,
          payload: 'List-Unsubscribe=One-Click',
          headers: { 'content-type': 'application/x-www-form-urlencoded' },
        })
      ).statusCode,
      404,
    );
    assert.deepEqual(recorded, []);
  });

  it('GET /u is a confirm page under a strict CSP; only POST unsubscribes', async () => {
    const { server, recorded } = await app();
    const page = await server.inject({ method: 'GET', url: `/u/${unsubscribe}` });
    assert.equal(page.statusCode, 200);
    assert.match(String(page.headers['content-security-policy']), /default-src 'none'.*form-action 'self'/);
    assert.match(
      page.body,
      /<form method="post"><input type="hidden" name="List-Unsubscribe" value="One-Click">/,
    );
    assert.deepEqual(recorded, []);

    const oneClick = await server.inject({
      method: 'POST',
      url: `/u/${unsubscribe}`,
      payload: 'List-Unsubscribe=One-Click',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
    });
    assert.equal(oneClick.statusCode, 200);
    const boundary = 'xyz';
    const multipart = await server.inject({
      method: 'POST',
      url: `/u/${unsubscribe}`,
      payload: `--${boundary}\r\nContent-Disposition: form-data; name="List-Unsubscribe"\r\n\r\nOne-Click\r\n--${boundary}--\r\n`,
      headers: { 'content-type': `multipart/form-data; boundary=${boundary}`, accept: 'text/html' },
    });
    assert.equal(multipart.statusCode, 200);
    const wrong = await server.inject({
      method: 'POST',
      url: `/u/${unsubscribe}`,
      payload: 'List-Unsubscribe=Maybe',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
    });
    assert.equal(wrong.statusCode, 400);
    assert.deepEqual(recorded, [
      { kind: 'unsubscribe', method: 'POST', via: 'one-click' },
      { kind: 'unsubscribe', method: 'POST', via: 'page' },
    ]);
  });

  it('a tracking host serves the tracking paths only', async () => {
    const { server } = await app();
    assert.equal(
      (await server.inject({ method: 'GET', url: '/healthz', headers: { host: 'pb-track.shop.test' } }))
        .statusCode,
      404,
    );
    assert.equal(
      (await server.inject({ method: 'GET', url: '/healthz', headers: { host: 'api.example.test' } }))
        .statusCode,
      200,
    );
    assert.equal(
      (await server.inject({ method: 'GET', url: `/o/${open}.gif`, headers: { host: 'pb-track.shop.test' } }))
        .statusCode,
      200,
    );
  });

  it('isOneClick reads both encodings RFC 8058 allows', () => {
    assert.equal(isOneClick('List-Unsubscribe=One-Click'), true);
    assert.equal(isOneClick('a=b&List-Unsubscribe=One-Click'), true);
    assert.equal(isOneClick('List-Unsubscribe=one-click'), false);
    assert.equal(isOneClick(undefined), false);
    assert.equal(
      isOneClick('--b\r\nContent-Disposition: form-data; name=List-Unsubscribe\r\n\r\nOne-Click\r\n--b--'),
      true,
    );
  });
});
