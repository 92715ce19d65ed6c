/**
 * The delivery engine's traffic shaping state (adaptive actions, circuits) lives in its memory;
 * this writes each change to the store as a shaping event, so that another process
 * (`postbote queue summary`) can see what is in force on which node.
 *
 *   const events = createShapingEventRecorder({ store, nodeId, logger });
 *   createAdaptiveShaper({ rules, onEvent: (e) => events.action(e) });
 *   createCircuitBreaker(options, random, (e) => events.circuit(e, circuit.status(e.key)));
 *   await events.flush();   // at shutdown, before the store closes
 *
 * Writes never hold up delivery: the changes of one event-loop turn go in one store call, not
 * awaited by anyone; a failed write is logged and dropped (the state itself is unaffected; only
 * the summary misses it). Within a batch, an action extended several times is written once, with
 * its latest expiry: a site answering every transaction with `421` extends its throttle each time.
 */

import type { Logger } from '../observability/logger.ts';
import type { Store } from '../store/store.ts';
import type { NewShapingEvent } from '../store/types.ts';
import type { ShapingActionEvent } from './shaping/adaptive.ts';
import type { CircuitEvent, CircuitStatus } from './shaping/circuit.ts';
import { formatRate } from './shaping/rate.ts';

export interface ShapingEventRecorder {
  action(event: ShapingActionEvent): void;
  /** `status`: the circuit's state right after the change (half-open: when its trial is given up). */
  circuit(event: CircuitEvent, status?: CircuitStatus): void;
  /** Resolves once everything handed in so far is written (or has failed). */
  flush(): Promise<void>;
}

/** The shaping event of an adaptive action's change. */
export function actionEvent(event: ShapingActionEvent, nodeId: string): NewShapingEvent {
  const { action } = event;
  const ended = event.type === 'expired' || event.type === 'lifted';
  return {
    at: event.at,
    nodeId,
    type: event.type,
    rule: action.rule,
    kind: action.kind,
    scopeKey: action.scopeKey,
    rate: action.rate ? formatRate(action.rate) : '',
    // An ended action's until is when it ended (a lifted one's own until was still ahead).
    until: ended ? Math.min(action.until, event.at) : action.until,
    reply: action.reply,
  };
}

/** The shaping event of a circuit's change; its scope is the adaptive site scope `site:<source>|<site>`. */
export function circuitEvent(event: CircuitEvent, nodeId: string, status?: CircuitStatus): NewShapingEvent {
  const failures = `${event.failures} consecutive connection failure${event.failures === 1 ? '' : 's'}`;
  const until =
    event.type === 'opened'
      ? (event.until ?? event.at)
      : event.type === 'half_open'
        ? (status?.retryAt ?? event.at)
        : event.at;
  return {
    at: event.at,
    nodeId,
    type: event.type,
    rule: 'circuit',
    kind: 'circuit',
    scopeKey: `site:${event.key}`,
    rate: '',
    until,
    reply: event.type === 'closed' ? '' : failures,
  };
}

export function createShapingEventRecorder(options: {
  store: Pick<Store, 'recordShapingEvents'>;
  nodeId: string;
  logger: Logger;
}): ShapingEventRecorder {
  const { store, nodeId, logger } = options;
  let pending: NewShapingEvent[] = [];
  let scheduled: NodeJS.Immediate | undefined;
  const writing = new Set<Promise<void>>();

  const write = (): void => {
    scheduled = undefined;
    const batch = pending;
    pending = [];
    if (batch.length === 0) return;
    const done = store
      .recordShapingEvents(batch)
      .catch((err: unknown) =>
        logger.warn({ err, events: batch.length }, 'could not record traffic shaping events'),
      )
      .finally(() => writing.delete(done));
    writing.add(done);
  };

  const add = (event: NewShapingEvent): void => {
    if (event.type === 'extended') {
      const earlier = pending.findIndex(
        (e) => e.type === 'extended' && e.rule === event.rule && e.scopeKey === event.scopeKey,
      );
      if (earlier >= 0) pending.splice(earlier, 1);
    }
    pending.push(event);
    scheduled ??= setImmediate(write);
  };

  return {
    action: (event) => add(actionEvent(event, nodeId)),
    circuit: (event, status) => add(circuitEvent(event, nodeId, status)),
    async flush() {
      if (scheduled) {
        clearImmediate(scheduled);
        write();
      }
      await Promise.all([...writing]);
    },
  };
}
