import { createBullBoard } from '@bull-board/api';
import { BullMQAdapter } from '@bull-board/api/bullMQAdapter';
import { FastifyAdapter } from '@bull-board/fastify';
import type { Queue } from 'bullmq';
import type { FastifyInstance } from 'fastify';
import { presentedToken, tokenDigests, tokenMatches } from './tokens.ts';

export const QUEUE_DASHBOARD_PATH = '/admin/queues';

/**
 * Bull Board at `/admin/queues`: waiting, active, delayed, failed and completed jobs of each queue,
 * with their data and errors, and retry. Behind SIGNET_API_TOKENS (Bearer, or Basic with the token
 * as password so a browser can log in); open when no token is configured, as /graphql is.
 */
export async function registerQueueDashboard(app: FastifyInstance, queues: readonly Queue[], tokens: readonly string[]): Promise<void> {
  const digests = tokenDigests(tokens);
  const serverAdapter = new FastifyAdapter();
  serverAdapter.setBasePath(QUEUE_DASHBOARD_PATH);
  createBullBoard({ queues: queues.map((q) => new BullMQAdapter(q)), serverAdapter, options: { uiConfig: { boardTitle: 'Signet queues' } } });
  await app.register(
    async (scope) => {
      if (digests.length > 0) {
        scope.addHook('onRequest', async (req, reply) => {
          if (!tokenMatches(presentedToken(req.headers.authorization), digests)) {
            await reply
              .code(401)
              .header('www-authenticate', 'Basic realm="signet", charset="UTF-8"')
              .send({ error: 'unauthorized', message: 'an API token is required (Authorization: Bearer <token>, or Basic with the token as password; see SIGNET_API_TOKENS)' });
          }
        });
      }
      await scope.register(serverAdapter.registerPlugin());
    },
    { prefix: QUEUE_DASHBOARD_PATH },
  );
}
