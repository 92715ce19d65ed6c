import type { ApiScope } from '../auth/scopes.ts';
import type { SendContext, Sender } from '../intake/send.ts';
import type { SendError } from '../intake/send-errors.ts';
import type { RawSendRequest, SendRequest, SendResult } from '../intake/send-request.ts';

export { API_SCOPES, type ApiScope } from '../auth/scopes.ts';

/** The verified holder of an API key. */
export interface ApiPrincipal {
  accountId: string;
  credentialId: string;
  scopes: readonly ApiScope[];
  /** The credential's default stream ('' = the account's `outbound`). */
  defaultStream: string;
}

export type BatchItem = { ok: true; result: SendResult } | { ok: false; error: SendError };

/**
 * What every HTTP front end (native, Postmark, Mailgun) sends through. Each call resolves only
 * after the messages are durable; a refused request rejects with a SendError and stores nothing.
 */
export interface SendApi {
  send(principal: ApiPrincipal, request: SendRequest, clientIp: string): Promise<SendResult>;
  /** One durable commit for the batch; a bad item fails alone. Results in request order. */
  sendBatch(principal: ApiPrincipal, requests: SendRequest[], clientIp: string): Promise<BatchItem[]>;
  sendRaw(principal: ApiPrincipal, request: RawSendRequest, clientIp: string): Promise<SendResult>;
}

/** How the front ends check keys and the per-key rate limit (api/keys.ts implements it). */
export interface KeyGate {
  /** The principal of an active key, or undefined (unknown, revoked, malformed). */
  authenticate(secret: string, clientIp: string): Promise<ApiPrincipal | undefined>;
  /** Takes one request from the key's budget; `retryAfterSeconds` when it is spent. */
  take(principal: ApiPrincipal): { ok: true } | { ok: false; retryAfterSeconds: number };
}

/** The SendApi over intake's sender: a principal becomes the sender's context. */
export function createSendApi(sender: Sender): SendApi {
  const context = (p: ApiPrincipal, clientIp: string): SendContext => ({
    accountId: p.accountId,
    credentialId: p.credentialId,
    defaultStream: p.defaultStream,
    clientIp,
  });
  return {
    send: (p, request, clientIp) => sender.send(context(p, clientIp), request),
    sendBatch: (p, requests, clientIp) => sender.sendBatch(context(p, clientIp), requests),
    sendRaw: (p, request, clientIp) => sender.sendRaw(context(p, clientIp), request),
  };
}
