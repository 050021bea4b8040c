import type { FastifyInstance } from 'fastify';
import type { DecisionTable } from './decision-table.ts';

/** At most this many images per batch request. */
export const MAX_BATCH = 256;

const decisionSchema = {
  type: 'object',
  properties: {
    image: { type: 'string' },
    digest: { type: ['string', 'null'] },
    allowed: { type: 'boolean' },
    reason: { type: 'string' },
    message: { type: 'string' },
    signers: {
      type: 'array',
      items: { type: 'object', properties: { subject: { type: 'string' }, issuer: { type: ['string', 'null'] } } },
    },
    policyVersion: { type: 'string' },
    verifiedAt: { type: ['string', 'null'] },
  },
} as const;

const imageRef = { type: 'string', minLength: 1, maxLength: 1024 } as const;
const error = { type: 'object', properties: { error: { type: 'string' }, message: { type: 'string' } } } as const;

/**
 * Decision endpoints, all answered from the in-memory decision table (Postgres on a miss; never a
 * registry): the native batch and single lookups, and OPA `http.send`'s `/verify`.
 */
export function registerApiRoutes(app: FastifyInstance, table: DecisionTable): void {
  app.post<{ Body: { images: string[] } }>(
    '/v1/decisions',
    {
      schema: {
        body: {
          type: 'object',
          required: ['images'],
          additionalProperties: false,
          properties: { images: { type: 'array', minItems: 1, maxItems: MAX_BATCH, items: imageRef } },
        },
        response: { 200: { type: 'object', properties: { decisions: { type: 'array', items: decisionSchema } } }, 400: error },
      },
    },
    async (req) => ({ decisions: await Promise.all(req.body.images.map((image) => table.lookup(image))) }),
  );

  app.get<{ Querystring: { image: string } }>(
    '/v1/decisions',
    {
      schema: {
        querystring: { type: 'object', required: ['image'], properties: { image: imageRef } },
        response: { 200: decisionSchema, 400: error },
      },
    },
    async (req) => table.lookup(req.query.image),
  );

  app.post<{ Body: { image: string } }>(
    '/verify',
    {
      schema: {
        body: { type: 'object', required: ['image'], properties: { image: imageRef } },
        response: { 200: { ...decisionSchema, properties: { ...decisionSchema.properties, verified: { type: 'boolean' } } }, 400: error },
      },
    },
    async (req) => {
      const d = await table.lookup(req.body.image);
      return { verified: d.allowed, ...d };
    },
  );
}
