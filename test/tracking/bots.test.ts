import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createMachineDetector } from '../../src/tracking/bots.ts';
import { storedIp } from '../../src/tracking/ip.ts';

const THUNDERBIRD = 'Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Thunderbird/128.3.0';
const CHROME =
  'Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0 Safari/537.36';

describe('machine activity', () => {
  const detect = createMachineDetector({ scannerWindowMs: 10_000, machineRanges: ['198.51.100.0/24'] });
  const base = { method: 'GET', ip: '203.0.113.9', at: 100_000, deliveredAt: 50_000 };

  it('Apple Mail Privacy Protection: Apple’s network and its bare user agent', () => {
    assert.equal(detect({ ...base, kind: 'open', userAgent: 'Mozilla/5.0', ip: '17.58.1.2' }), 'apple_mpp');
    assert.equal(
      detect({ ...base, kind: 'open', userAgent: 'Mozilla/5.0', ip: '::ffff:17.0.0.9' }),
      'apple_mpp',
    );
    assert.equal(
      detect({ ...base, kind: 'open', userAgent: 'Mozilla/5.0', ip: '203.0.113.9' }),
      undefined,
      'not Apple’s network',
    );
  });

  it('known scanners, HTTP libraries and an empty user agent', () => {
    for (const ua of [
      'Barracuda Sentinel (EE)',
      'Mozilla/5.0 (compatible; Mimecast)',
      'python-requests/2.31',
      'curl/8.5.0',
      '',
    ]) {
      assert.equal(detect({ ...base, kind: 'click', userAgent: ua }), 'scanner_user_agent', ua);
    }
    // Mail clients' image proxies are people reading mail.
    assert.equal(
      detect({ ...base, kind: 'open', userAgent: 'Mozilla/5.0 (via ggpht.com GoogleImageProxy)' }),
      undefined,
    );
  });

  it('clicks within seconds of delivery are a link scanner; later ones, and opens, are people', () => {
    assert.equal(detect({ ...base, kind: 'click', userAgent: CHROME, at: 52_000 }), 'fast_click');
    assert.equal(detect({ ...base, kind: 'click', userAgent: CHROME, at: 61_000 }), undefined);
    assert.equal(detect({ ...base, kind: 'open', userAgent: THUNDERBIRD, at: 52_000 }), undefined);
    assert.equal(detect({ ...base, kind: 'click', userAgent: CHROME, deliveredAt: undefined }), undefined);
    const off = createMachineDetector({ scannerWindowMs: 0 });
    assert.equal(off({ ...base, kind: 'click', userAgent: CHROME, at: 50_001 }), undefined);
  });

  it('HEAD requests and listed ranges', () => {
    assert.equal(detect({ ...base, kind: 'click', userAgent: CHROME, method: 'HEAD' }), 'head_request');
    assert.equal(detect({ ...base, kind: 'open', userAgent: CHROME, ip: '198.51.100.77' }), 'listed_range');
  });
});

describe('IP privacy', () => {
  it('full, truncated (/24, /48) or none', () => {
    assert.equal(storedIp('203.0.113.77', 'full'), '203.0.113.77');
    assert.equal(storedIp('203.0.113.77', 'truncated'), '203.0.113.0');
    assert.equal(storedIp('::ffff:203.0.113.77', 'truncated'), '203.0.113.0');
    assert.equal(storedIp('2001:db8:abcd:12:1:2:3:4', 'truncated'), '2001:db8:abcd::');
    assert.equal(storedIp('2001:db8::1', 'truncated'), '2001:db8:0::');
    assert.equal(storedIp('::1', 'truncated'), '0:0:0::');
    assert.equal(storedIp('fe80::1%eth0', 'truncated'), 'fe80:0:0::');
    assert.equal(storedIp('203.0.113.77', 'none'), undefined);
    assert.equal(storedIp('not an ip', 'full'), undefined);
    assert.equal(storedIp(undefined, 'full'), undefined);
  });
});
