import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  compileDomainSet,
  normalizeDomain,
  parseDomainPattern,
} from '../../../src/delivery/routing/domain-pattern.ts';

describe('parseDomainPattern', () => {
  it('normalises exact domains, subdomain wildcards and the catch-all', () => {
    assert.deepEqual(parseDomainPattern(' Example.COM. '), { pattern: 'example.com' });
    assert.deepEqual(parseDomainPattern('*.Example.com'), { pattern: '*.example.com' });
    assert.deepEqual(parseDomainPattern('*.de'), { pattern: '*.de' });
    assert.deepEqual(parseDomainPattern('*'), { pattern: '*' });
    assert.deepEqual(parseDomainPattern('Bücher.example'), { pattern: 'xn--bcher-kva.example' });
  });

  it('refuses anything else', () => {
    for (const bad of [
      '',
      'ex*.com',
      '*example.com',
      '*.*.example.com',
      'a.*.com',
      '.example.com',
      'com',
      'a b.com',
      '**',
      'a..b',
    ]) {
      assert.ok('problem' in parseDomainPattern(bad), bad);
    }
  });
});

describe('compileDomainSet', () => {
  it('matches exact domains only exactly, and wildcards at any depth below but not at the apex', () => {
    const set = compileDomainSet(['example.com', '*.example.net']);
    assert.equal(set.matches('example.com'), true);
    assert.equal(set.matches('mail.example.com'), false);
    assert.equal(set.matches('example.net'), false);
    assert.equal(set.matches('a.example.net'), true);
    assert.equal(set.matches('a.b.example.net'), true);
    assert.equal(set.matches('notexample.net'), false);
    assert.equal(set.matches('example.net.evil.test'), false);
  });

  it('matches everything with *', () => {
    assert.equal(compileDomainSet(['*']).matches('anything.test'), true);
    assert.equal(compileDomainSet([]).matches('anything.test'), false);
  });

  it('compares recipient domains in the same form', () => {
    const parsed = parseDomainPattern('bücher.example');
    assert.ok('pattern' in parsed);
    const set = compileDomainSet([parsed.pattern]);
    assert.equal(set.matches(normalizeDomain('BÜCHER.example.')!), true);
    assert.equal(set.matches(normalizeDomain('xn--bcher-kva.example')!), true);
  });
});
