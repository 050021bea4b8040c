import { z } from 'zod';
import { formatImageReference, parseImageReference } from '../common/domain/image-ref.ts';
import { publicMessage } from './disclosure.ts';
import type { ImageDecision } from './decisions/lookup.ts';

/** Where a container image sits in the admitted object, as a JSON Pointer, and what it says. */
export interface ImageSite {
  readonly path: string;
  readonly image: string;
}

const CONTAINER_LISTS = ['containers', 'initContainers', 'ephemeralContainers'] as const;

/** Pod specs by kind: a Pod's own, a workload's template, a CronJob's job template. */
const POD_SPEC_PATH: Readonly<Record<string, readonly string[]>> = {
  Pod: ['spec'],
  Deployment: ['spec', 'template', 'spec'],
  StatefulSet: ['spec', 'template', 'spec'],
  DaemonSet: ['spec', 'template', 'spec'],
  ReplicaSet: ['spec', 'template', 'spec'],
  ReplicationController: ['spec', 'template', 'spec'],
  Job: ['spec', 'template', 'spec'],
  CronJob: ['spec', 'jobTemplate', 'spec', 'template', 'spec'],
};

export const AdmissionReview = z.looseObject({
  apiVersion: z.enum(['admission.k8s.io/v1', 'admission.k8s.io/v1beta1']),
  kind: z.literal('AdmissionReview'),
  request: z.looseObject({
    uid: z.string().min(1),
    kind: z.looseObject({ kind: z.string() }),
    operation: z.string().optional(),
    namespace: z.string().optional(),
    name: z.string().optional(),
    userInfo: z.looseObject({ username: z.string().optional() }).optional(),
    object: z.record(z.string(), z.unknown()).nullable().optional(),
  }),
});
export type AdmissionReview = z.infer<typeof AdmissionReview>;

/** Every container image of a Pod or pod-template workload (containers, init and ephemeral). */
export function imageSites(kind: string, object: Record<string, unknown> | null | undefined): ImageSite[] {
  const path = POD_SPEC_PATH[kind];
  if (path === undefined || object === null || object === undefined) {
    return [];
  }
  let spec: unknown = object;
  for (const step of path) {
    spec = spec !== null && typeof spec === 'object' ? (spec as Record<string, unknown>)[step] : undefined;
  }
  if (spec === null || typeof spec !== 'object') {
    return [];
  }
  const sites: ImageSite[] = [];
  for (const list of CONTAINER_LISTS) {
    const containers = (spec as Record<string, unknown>)[list];
    if (!Array.isArray(containers)) {
      continue;
    }
    containers.forEach((c: unknown, i) => {
      const image = c !== null && typeof c === 'object' ? (c as { image?: unknown }).image : undefined;
      if (typeof image === 'string') {
        sites.push({ path: `/${[...path, list, String(i), 'image'].join('/')}`, image });
      }
    });
  }
  return sites;
}

/** The denial message names each offending image, why, and the rule; never signer identities (kubectl shows it to whoever applied). */
export function denialMessage(decisions: readonly ImageDecision[]): string {
  return decisions
    .filter((d) => !d.allowed)
    .map((d) => `${d.image}: ${d.reason} (${publicMessage(d)})`)
    .join('; ');
}

/** `registry/repo@digest` for an image Signet allowed and knows the digest of; null otherwise. */
export function pinnedReference(d: ImageDecision): string | null {
  if (!d.allowed || d.digest === null || d.reason === 'invalid_reference') {
    return null;
  }
  const ref = parseImageReference(d.image);
  return formatImageReference({ ...ref, tag: null, digest: d.digest });
}
