import { isIP } from 'node:net';
import type { Logger } from 'pino';
import type { Authenticator } from '../auth/authenticator.ts';
import { recipientDomain } from '../intake/address.ts';
import { type Intake, InvalidRecipientError, UnknownStreamError } from '../intake/intake.ts';
import { SendError } from '../intake/send-errors.ts';
import type { Credential, DsnNotify, MessageDsn, RecipientDsn } from '../store/types.ts';
import { replies, type SmtpReply } from './replies.ts';
import type { SmtpHandlers, SmtpParams, SmtpSession } from './server/types.ts';

/** Who a submission session relays for: an AUTH login or an IP credential. */
export interface SubmissionUser {
  credential: Credential;
  via: 'auth' | 'ip';
}

export function isLoopback(ip: string): boolean {
  const v4 = ip.replace(/^::ffff:/i, '');
  return ip === '::1' || (isIP(v4) === 4 && v4.startsWith('127.'));
}

function messageDsn(params: SmtpParams | undefined): MessageDsn {
  const ret = params?.RET?.toUpperCase();
  return {
    ...(ret === 'FULL' || ret === 'HDRS' ? { ret } : {}),
    ...(params?.ENVID ? { envid: params.ENVID } : {}),
  };
}

function recipientDsn(params: SmtpParams, requireTls: boolean): RecipientDsn | undefined {
  // The protocol layer has already refused NOTIFY values outside RFC 3461 with 501.
  const notify = params.NOTIFY?.toUpperCase().split(',').filter(Boolean) as DsnNotify[] | undefined;
  if (!notify && !params.ORCPT && !requireTls) return undefined;
  return {
    ...(notify ? { notify } : {}),
    ...(params.ORCPT ? { orcpt: params.ORCPT } : {}),
    // RFC 8689: a property of the message, kept on each recipient (it travels with the lease).
    ...(requireTls ? { requireTls: true } : {}),
  };
}

/**
 * The submission policy as SMTP phase hooks: relaying needs an SMTP login or an IP credential
 * (never an open relay), failed logins feed the lockout, and DATA ends in one durable commit
 * before the 250.
 */
export function submissionHandlers(deps: {
  authenticator: Authenticator;
  intake: Intake;
  logger: Logger;
}): SmtpHandlers {
  const { authenticator, intake, logger } = deps;
  return {
    async onAuth(session, { method, username, password }) {
      const result = await authenticator.verifyPassword(session.remoteAddress, username, password);
      if (result.ok) {
        const user: SubmissionUser = { credential: result.credential, via: 'auth' };
        logger.info({ session: session.id, ip: session.remoteAddress, username, method }, 'authenticated');
        return { ok: true, user };
      }
      logger.warn(
        { session: session.id, ip: session.remoteAddress, username, reason: result.reason },
        'AUTH failed',
      );
      const reply: SmtpReply =
        result.reason === 'locked_out'
          ? replies.authLockedOut
          : result.reason === 'unavailable'
            ? replies.authTemporaryFailure
            : replies.authFailed;
      return { ok: false, reply };
    },

    async onMailFrom(session) {
      if (session.user) return undefined;
      const credential = await authenticator.credentialForIp(session.remoteAddress);
      if (credential) {
        session.user = { credential, via: 'ip' } satisfies SubmissionUser;
        return undefined;
      }
      logger.info({ session: session.id, ip: session.remoteAddress }, 'MAIL refused: not authenticated');
      return replies.authRequired;
    },

    async onRcptTo(session, address) {
      if (!session.user) return replies.relayDenied;
      if (!recipientDomain(address)) return replies.invalidAddress;
      return undefined;
    },

    async onData(session: SmtpSession, message: Buffer) {
      const user = session.user as SubmissionUser | undefined;
      const envelope = session.envelope;
      if (!user || !envelope.mailFrom) return replies.badSequence;
      const requireTls = Object.hasOwn(envelope.mailFrom.params, 'REQUIRETLS');
      // RFC 3848 protocol names: ESMTP + S (TLS) + A (authenticated); plain SMTP after HELO.
      const protocol = session.esmtp
        ? `ESMTP${session.secure ? 'S' : ''}${user.via === 'auth' ? 'A' : ''}`
        : 'SMTP';
      try {
        const { id } = await intake.submit({
          accountId: user.credential.accountId,
          credentialId: user.credential.id,
          mailFrom: envelope.mailFrom.address,
          recipients: envelope.rcptTo.map((r) => {
            const dsn = recipientDsn(r.params, requireTls);
            return dsn ? { address: r.address, dsn } : { address: r.address };
          }),
          raw: message,
          defaultStream: user.credential.defaultStream,
          source: 'smtp',
          clientIp: session.remoteAddress,
          dsn: messageDsn(envelope.mailFrom.params),
          trace: {
            heloName: session.heloName ?? '',
            protocol,
            ...(session.tls ? { tls: session.tls } : {}),
          },
        });
        logger.info(
          {
            event: 'accepted',
            messageId: id,
            session: session.id,
            ip: session.remoteAddress,
            recipients: envelope.rcptTo.length,
            size: message.length,
          },
          'message accepted',
        );
        return replies.queued(id);
      } catch (err) {
        if (err instanceof InvalidRecipientError) return replies.invalidAddress;
        if (err instanceof UnknownStreamError) {
          logger.info(
            { session: session.id, ip: session.remoteAddress, stream: err.stream, from: err.source },
            'message refused: unknown stream',
          );
          const namedBy =
            err.source === 'header' ? 'X-Postbote-Stream' : `the ${err.source}'s default stream`;
          return replies.unknownStream(err.stream, namedBy);
        }
        if (err instanceof SendError && err.code === 'sender_not_allowed') {
          logger.info(
            { session: session.id, ip: session.remoteAddress, reason: err.message },
            'message refused',
          );
          return replies.senderNotAllowed;
        }
        if (err instanceof SendError) {
          logger.info({ session: session.id, ip: session.remoteAddress, code: err.code }, 'message refused');
          return replies.invalidControl(err.message);
        }
        logger.error({ err, session: session.id }, 'could not store the message; answered 451');
        return replies.storeUnavailable;
      }
    },
  };
}
