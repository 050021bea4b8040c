import { createHash, timingSafeEqual } from 'node:crypto';
import { createBullBoard } from '@bull-board/api';
import { BullMQAdapter } from '@bull-board/api/bullMQAdapter';
import { FastifyAdapter } from '@bull-board/fastify';
import type { Queue } from 'bullmq';
import type { FastifyInstance } from 'fastify';

export const QUEUE_DASHBOARD_PATH = '/admin/queues';

const digestOf = (s: string) => createHash('sha256').update(s).digest();

/**
 * The API token a request presents: `Authorization: Bearer <token>`, or HTTP Basic with any user
 * name and the token as password (what a browser can send after its login prompt).
 */
export function presentedToken(header: string | undefined): string | null {
  const bearer = /^Bearer\s+(\S+)$/i.exec(header ?? '');
  if (bearer !== null) {
    return bearer[1]!;
  }
  const basic = /^Basic\s+([A-Za-z0-9+/=]+)$/i.exec(header ?? '');
  if (basic === null) {
    return null;
  }
  const decoded = Buffer.from(basic[1]!, 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  return colon === -1 ? null : decoded.slice(colon + 1);
}

/** Constant-time: the presented token against every configured one (sha256 digests, equal lengths). */
export function tokenMatches(presented: string | null, tokens: readonly Buffer[]): boolean {
  const d = digestOf(presented ?? '');
  let ok = false;
  for (const t of tokens) {
    ok = timingSafeEqual(d, t) || ok;
  }
  return ok && presented !== null;
}

/**
 * Bull Board at `/admin/queues`: waiting, active, delayed, failed and completed jobs of each queue,
 * with their data and errors, and retry. Behind SIGNET_API_TOKENS (Bearer, or Basic with the token
 * as password so a browser can log in); open when no token is configured, as /graphql is.
 */
export async function registerQueueDashboard(app: FastifyInstance, queues: readonly Queue[], tokens: readonly string[]): Promise<void> {
  const digests = tokens.map(digestOf);
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
