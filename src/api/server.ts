import Fastify, { type FastifyInstance } from 'fastify';
import type { Store } from '../store/store.ts';

/**
 * The HTTP listener. For now: health. The send API, tracking and dashboard mount here later,
 * one file per resource.
 */
export function createHttpServer(deps: { store: Store; nodeId: string; startedAt: number }): FastifyInstance {
  const app = Fastify({ logger: false, bodyLimit: 1024 * 1024 });
  app.get('/healthz', async (_request, reply) => {
    try {
      const states = await deps.store.countByState();
      return {
        status: 'ok',
        node: deps.nodeId,
        uptimeSeconds: Math.round((Date.now() - deps.startedAt) / 1000),
        queue: states,
      };
    } catch {
      return reply.code(503).send({ status: 'unavailable', node: deps.nodeId, error: 'store not reachable' });
    }
  });
  return app;
}
