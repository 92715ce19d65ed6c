import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { detectAutoReply } from '../../src/bounces/auto-reply.ts';
import type { HeaderField } from '../../src/bounces/mime.ts';
import { parseReport } from '../../src/bounces/parse.ts';

describe('detectAutoReply', () => {
  it('RFC 3834 Auto-Submitted: anything but "no"', () => {
    assert.deepEqual(detectAutoReply([['Auto-Submitted', ' auto-replied (vacation)']]), {
      autoReply: true,
      reason: 'auto-submitted: auto-replied',
    });
    assert.equal(detectAutoReply([['Auto-Submitted', 'auto-generated']]).autoReply, true);
    assert.equal(detectAutoReply([['Auto-Submitted', 'no']]).autoReply, false);
  });

  it('X-Autoreply and friends, Precedence: auto_reply, but not Precedence: bulk', () => {
    const h = (name: string, value: string): HeaderField[] => [[name, value]];
    assert.equal(detectAutoReply(h('X-Autoreply', 'yes')).autoReply, true);
    assert.equal(detectAutoReply(h('X-Autorespond', 'Thanks')).autoReply, true);
    assert.equal(detectAutoReply(h('X-Autoreply', 'no')).autoReply, false);
    assert.equal(detectAutoReply(h('Precedence', 'auto_reply')).autoReply, true);
    assert.equal(detectAutoReply(h('Precedence', 'bulk')).autoReply, false);
    assert.equal(detectAutoReply(h('Precedence', 'list')).autoReply, false);
  });

  it('out-of-office subjects in several languages', () => {
    const subjects = [
      'Automatic reply: Invoice 42',
      'Automatische Antwort: Ihre Bestellung',
      'Abwesenheitsnotiz: Ihre Bestellung',
      'Réponse automatique : Votre commande',
      'Respuesta automática: Su pedido',
      'Risposta automatica: Il suo ordine',
      'Automatisch antwoord: Uw bestelling',
      'Autosvar: Din beställning',
      'Out of Office: Newsletter',
      'OOO until Monday',
      'Automatyczna odpowiedź: Zamówienie',
      'Автоматический ответ: Заказ',
      '自动回复: 订单',
    ];
    for (const subject of subjects) assert.equal(detectAutoReply([], { subject }).autoReply, true, subject);
    for (const subject of ['Re: Your order', 'Invoice 42', 'Order confirmation']) {
      assert.equal(detectAutoReply([], { subject }).autoReply, false, subject);
    }
  });

  it('an out-of-office body when headers and subject say nothing', () => {
    assert.equal(
      detectAutoReply([], { text: 'Hello, I am currently out of the office until June.' }).reason,
      'body',
    );
    assert.equal(detectAutoReply([], { text: 'Ich bin bis 3. Mai nicht im Büro.' }).autoReply, true);
    assert.equal(detectAutoReply([], { text: 'Thanks, the parcel arrived.' }).autoReply, false);
  });
});

describe('parseReport: auto-replies are not bounces, bounces with Auto-Submitted are', () => {
  it('a vacation reply', () => {
    const got = parseReport(
      Buffer.from(
        'From: a@x.example\nTo: b+T1@pb-bounces.shop.test\nSubject: Out of office\nAuto-Submitted: auto-replied\n\nAway.\n',
      ),
    );
    assert.deepEqual(
      [got.kind, got.recipients, got.returnPathToken],
      ['auto_reply', [], 'b+T1@pb-bounces.shop.test'],
    );
  });

  it('a MAILER-DAEMON notice with Auto-Submitted is still a bounce', () => {
    const got = parseReport(
      Buffer.from(
        'From: MAILER-DAEMON@mx.example\nSubject: failure notice\nAuto-Submitted: auto-replied\n\n' +
          "Hi. This is the qmail-send program at mx.example.\nI'm afraid I wasn't able to deliver your message to the following addresses.\n\n" +
          '<gone@example.org>:\nSorry, no mailbox here by that name. (#5.1.1)\n',
      ),
    );
    assert.equal(got.kind, 'bounce');
    assert.equal(got.recipients[0]?.email, 'gone@example.org');
  });
});
