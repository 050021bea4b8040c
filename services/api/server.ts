import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { z } from 'zod';
import { AdmissionReview, pinnedReference } from './admission.ts';
import type { AdmissionRecorder } from './admission-record.ts';
import { type AdmitDeps, admit } from './admit.ts';
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
    rule: { type: ['string', 'null'] },
    mode: { type: 'string', enum: ['enforce', 'warn', 'audit'] },
    scope: { type: ['string', 'null'] },
    verifiedAt: { type: ['string', 'null'] },
    expiresAt: { type: ['string', 'null'] },
    stale: { type: 'boolean' },
  },
} as const;

const imageRef = { type: 'string', minLength: 1, maxLength: 1024 } as const;
/** The namespace an answer is for (the policy's scope); a DNS label. */
const namespaceName = { type: 'string', minLength: 1, maxLength: 63 } as const;
const error = { type: 'object', properties: { error: { type: 'string' }, message: { type: 'string' } } } as const;

/** Whether a request may see signer identities (see `disclosure.ts`). */
export type MayDisclose = (req: FastifyRequest) => boolean;

/**
 * Decision endpoints, all answered from the in-memory decision table (Postgres on a miss; never a
 * registry): the native batch and single lookups, and OPA `http.send`'s `/verify`. Signers are
 * shown only to callers `mayDisclose` admits; allow or deny and the reason to everyone.
 */
export function registerApiRoutes(app: FastifyInstance, table: ImageDecisions, mayDisclose: MayDisclose, admission: AdmissionDeps): void {
  const view = (req: FastifyRequest) => (mayDisclose(req) ? (d: ImageDecision) => d : withoutSigners);
  app.post<{ Body: { images: string[]; namespace?: string } }>(
    '/v1/decisions',
    {
      schema: {
        body: {
          type: 'object',
          required: ['images'],
          additionalProperties: false,
          properties: { images: { type: 'array', minItems: 1, maxItems: MAX_BATCH, items: imageRef }, namespace: namespaceName },
        },
        response: { 200: { type: 'object', properties: { decisions: { type: 'array', items: decisionSchema } } }, 400: error },
      },
    },
    async (req) => ({ decisions: (await Promise.all(req.body.images.map((image) => table.lookup(image, req.body.namespace)))).map(view(req)) }),
  );

  app.get<{ Querystring: { image: string; namespace?: string } }>(
    '/v1/decisions',
    {
      schema: {
        querystring: { type: 'object', required: ['image'], properties: { image: imageRef, namespace: namespaceName } },
        response: { 200: decisionSchema, 400: error },
      },
    },
    async (req) => view(req)(await table.lookup(req.query.image, req.query.namespace)),
  );

  app.post<{ Body: { image: string; namespace?: string } }>(
    '/verify',
    {
      schema: {
        body: { type: 'object', required: ['image'], properties: { image: imageRef, namespace: namespaceName } },
        response: { 200: { ...decisionSchema, properties: { ...decisionSchema.properties, verified: { type: 'boolean' } } }, 400: error },
      },
    },
    async (req) => {
      const d = view(req)(await table.lookup(req.body.image, req.body.namespace));
      return { verified: d.allowed, ...d };
    },
  );

  registerGatekeeperRoutes(app, table, view);
  registerAdmissionRoutes(app, table, admission);
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
 * decision as `value` (with the rule's `mode`), and `error` set when the policy denies the image,
 * whatever its mode: Gatekeeper's own `enforcementAction` decides what a violation does, and a
 * template that reads `value.mode` can split them (README, "Modes"). `systemError` only when
 * Signet itself fails.
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
    mode: d.mode,
    scope: d.scope,
    verifiedAt: d.verifiedAt,
    expiresAt: d.expiresAt ?? null,
    stale: d.stale,
  };
}

/** What the admission routes need beyond decisions: the policy's rollout controls, alerts and the record. */
export interface AdmissionDeps extends Omit<AdmitDeps, 'decisions'> {
  readonly recorder: AdmissionRecorder | null;
}

/**
 * Kubernetes admission (AdmissionReview v1, and v1beta1 answered in kind) for Pods and every
 * pod-template workload, decided for the request's namespace. Validation denies when any
 * container, init or ephemeral container image is denied in `enforce` mode with no exemption or
 * break-glass admitting it, naming each, and warns for the rest (see `admit.ts`); mutation pins
 * allowed images to their digests with a JSONPatch.
 */
function registerAdmissionRoutes(app: FastifyInstance, table: ImageDecisions, deps: AdmissionDeps): void {
  const review = async (body: unknown, reply: FastifyReply, mutate: boolean) => {
    const parsed = AdmissionReview.safeParse(body);
    if (!parsed.success) {
      return badRequest(reply, parsed.error);
    }
    const { response, outcome, sites, decisions } = await admit(parsed.data, { ...deps, decisions: table }, mutate);
    if (mutate) {
      const patch = sites.flatMap((site, i) => {
        const pinned = pinnedReference(decisions[i]!);
        return pinned === null || pinned === site.image ? [] : [{ op: 'replace', path: site.path, value: pinned }];
      });
      if (patch.length > 0) {
        response.patchType = 'JSONPatch';
        response.patch = Buffer.from(JSON.stringify(patch)).toString('base64');
      }
    } else {
      deps.recorder?.record(outcome);
    }
    return { apiVersion: parsed.data.apiVersion, kind: 'AdmissionReview', response };
  };
  app.post('/admission/validate', async (req, reply) => review(req.body, reply, false));
  app.post('/admission/mutate', async (req, reply) => review(req.body, reply, true));
}
