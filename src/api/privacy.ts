import type { FastifyInstance } from 'fastify';
import { credentialActor } from '../audit/audit.ts';
import { type Privacy, PrivacyError } from '../privacy/privacy.ts';
import { ApiError } from './errors.ts';
import { authorize } from './keys.ts';
import { documented } from './messages.ts';
import { errorSchema, security } from './schemas.ts';
import type { KeyGate } from './send-api.ts';

/**
 * /v1/privacy/{email}: everything the account stores about one address (GET, JSON) and its
 * erasure (DELETE). Both need the `admin` scope and see only the key's own account.
 */
export function registerPrivacyRoutes(app: FastifyInstance, deps: { privacy: Privacy; keys: KeyGate }): void {
  const tags = ['privacy'];
  const asApiError = (err: unknown): never => {
    if (err instanceof PrivacyError) throw new ApiError('invalid_address', err.message, 'email');
    throw err;
  };
  const params = { type: 'object', properties: { email: { type: 'string' } } };

  app.get(
    '/v1/privacy/:email',
    documented({
      tags,
      summary:
        'Export what this account stores about an address: messages, its events, suppressions, other mentions',
      security,
      params,
      response: { '4xx': errorSchema },
    }),
    async (request) => {
      const principal = await authorize(deps.keys, request, 'admin');
      const { email } = request.params as { email: string };
      return deps.privacy.exportAddress({ email, accountId: principal.accountId }).catch(asApiError);
    },
  );

  app.delete(
    '/v1/privacy/:email',
    documented({
      tags,
      summary:
        'Erase an address from this account: messages naming it, its events and other mentions; its suppressions stay as a salted hash',
      security,
      params,
      response: { '4xx': errorSchema },
    }),
    async (request) => {
      const principal = await authorize(deps.keys, request, 'admin');
      const { email } = request.params as { email: string };
      const result = await deps.privacy
        .erase({ email, accountId: principal.accountId, actor: credentialActor(principal.credentialId) })
        .catch(asApiError);
      return {
        erased: true,
        messages: result.messages,
        suppressions_hashed: result.suppressionsHashed,
        tables: result.tables,
        token: result.token,
      };
    },
  );
}
