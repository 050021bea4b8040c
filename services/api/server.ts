import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { z } from 'zod';
import { AdmissionReview, denialMessage, imageSites, pinnedReference } from './admission.ts';
import type { ImageDecision, ImageDecisions } from './decisions/lookup.ts';
import { publicMessage, withoutSigners } from './disclosure.ts';

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
    stale: { type: 'boolean' },
  },
} as const;

const imageRef = { type: 'string', minLength: 1, maxLength: 1024 } as const;
const error = { type: 'object', properties: { error: { type: 'string' }, message: { type: 'string' } } } as const;

/** Whether a request may see signer identities (see `disclosure.ts`). */
export type MayDisclose = (req: FastifyRequest) => boolean;

/**
 * Decision endpoints, all answered from the in-memory decision table (Postgres on a miss; never a
 * registry): the native batch and single lookups, and OPA `http.send`'s `/verify`. Signers are
 * shown only to callers `mayDisclose` admits; allow or deny and the reason to everyone.
 */
export function registerApiRoutes(app: FastifyInstance, table: ImageDecisions, mayDisclose: MayDisclose = () => true): void {
  const view = (req: FastifyRequest) => (mayDisclose(req) ? (d: ImageDecision) => d : withoutSigners);
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
    async (req) => ({ decisions: (await Promise.all(req.body.images.map((image) => table.lookup(image)))).map(view(req)) }),
  );

  app.get<{ Querystring: { image: string } }>(
    '/v1/decisions',
    {
      schema: {
        querystring: { type: 'object', required: ['image'], properties: { image: imageRef } },
        response: { 200: decisionSchema, 400: error },
      },
    },
    async (req) => view(req)(await table.lookup(req.query.image)),
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
      const d = view(req)(await table.lookup(req.body.image));
      return { verified: d.allowed, ...d };
    },
  );

  registerGatekeeperRoutes(app, table, view);
  registerAdmissionRoutes(app, table);
}

const ProviderRequest = z.looseObject({
  apiVersion: z.enum(['externaldata.gatekeeper.sh/v1beta1', 'externaldata.gatekeeper.sh/v1alpha1']),
  kind: z.literal('ProviderRequest'),
  request: z.looseObject({ keys: z.array(z.string().max(1024)).max(MAX_BATCH) }),
});

function badRequest(reply: FastifyReply, error: z.ZodError) {
  return reply.code(400).send({ error: 'bad_request', message: z.prettifyError(error) });
}

/**
 * Gatekeeper external data (`ProviderRequest` → `ProviderResponse`). Every key gets an item: the
 * decision as `value`, and `error` set when the image is denied, so the usual templates
 * (`count(response.errors) > 0`) deny. `systemError` only when Signet itself fails.
 */
function registerGatekeeperRoutes(app: FastifyInstance, table: ImageDecisions, view: (req: FastifyRequest) => (d: ImageDecision) => ImageDecision): void {
  const respond = async (req: FastifyRequest, reply: FastifyReply, item: (d: ImageDecision) => { value: unknown; error?: string }) => {
    const parsed = ProviderRequest.safeParse(req.body);
    if (!parsed.success) {
      return badRequest(reply, parsed.error);
    }
    const base = { apiVersion: parsed.data.apiVersion, kind: 'ProviderResponse' };
    try {
      const decisions = (await Promise.all(parsed.data.request.keys.map((k) => table.lookup(k)))).map(view(req));
      return { ...base, response: { idempotent: true, items: decisions.map((d) => ({ key: d.image, ...item(d) })) } };
    } catch (err) {
      reply.log.error({ err }, 'gatekeeper provider failed');
      return { ...base, response: { idempotent: true, items: [], systemError: `signet: ${(err as Error).message}` } };
    }
  };
  // The errors reach the user whose Pod was denied: never signer identities in them.
  app.post('/gatekeeper/validate', async (req, reply) =>
    respond(req, reply, (d) => ({ value: decisionValue(d), ...(d.allowed ? {} : { error: `${d.reason}: ${publicMessage(d)}` }) })),
  );
  app.post('/gatekeeper/mutate', async (req, reply) =>
    respond(req, reply, (d) => {
      const pinned = pinnedReference(d);
      return pinned === null ? { value: d.image, error: `${d.reason}: ${publicMessage(d)}` } : { value: pinned };
    }),
  );
}

function decisionValue(d: ImageDecision) {
  return {
    allowed: d.allowed,
    reason: d.reason,
    message: d.message,
    digest: d.digest,
    signers: d.signers,
    policyVersion: d.policyVersion,
    verifiedAt: d.verifiedAt,
    stale: d.stale,
  };
}

/**
 * Kubernetes admission (AdmissionReview v1, and v1beta1 answered in kind) for Pods and every
 * pod-template workload. Validation denies when any container, init or ephemeral container image
 * is denied, naming each; mutation pins allowed images to their digests with a JSONPatch.
 */
function registerAdmissionRoutes(app: FastifyInstance, table: ImageDecisions): void {
  const review = async (body: unknown, reply: FastifyReply, mutate: boolean) => {
    const parsed = AdmissionReview.safeParse(body);
    if (!parsed.success) {
      return badRequest(reply, parsed.error);
    }
    const { request } = parsed.data;
    const sites = imageSites(request.kind.kind, request.object);
    const decisions = await Promise.all(sites.map((s) => table.lookup(s.image)));
    const denied = decisions.filter((d) => !d.allowed);
    const response: Record<string, unknown> = { uid: request.uid, allowed: mutate || denied.length === 0 };
    if (!mutate && denied.length > 0) {
      response.status = { code: 403, reason: 'Forbidden', message: `Signet denied ${denied.length} image(s): ${denialMessage(decisions)}` };
    }
    if (mutate) {
      const patch = sites.flatMap((site, i) => {
        const pinned = pinnedReference(decisions[i]!);
        return pinned === null || pinned === site.image ? [] : [{ op: 'replace', path: site.path, value: pinned }];
      });
      if (patch.length > 0) {
        response.patchType = 'JSONPatch';
        response.patch = Buffer.from(JSON.stringify(patch)).toString('base64');
      }
    }
    return { apiVersion: parsed.data.apiVersion, kind: 'AdmissionReview', response };
  };
  app.post('/admission/validate', async (req, reply) => review(req.body, reply, false));
  app.post('/admission/mutate', async (req, reply) => review(req.body, reply, true));
}
