// Workloads as admission sees them: where their container images are, and what they ask for.

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

/**
 * The workload annotation that asks for break-glass; its value says why (any non-empty text).
 * Put it on the pod template of a workload, so the Pods it creates carry it too.
 */
export const BREAK_GLASS_ANNOTATION = 'signet.dev/break-glass';

/** The break-glass reason an admitted object asks with: its own annotation, or its pod template's. */
export function breakGlassRequest(object: Record<string, unknown> | null | undefined): string | null {
  const own = annotation(object?.metadata);
  if (own !== null) {
    return own;
  }
  const spec = object?.spec as Record<string, unknown> | undefined;
  const template = (spec?.template ?? (spec?.jobTemplate as Record<string, unknown> | undefined)?.spec) as Record<string, unknown> | undefined;
  const nested = (template?.template as Record<string, unknown> | undefined) ?? template;
  return annotation(nested?.metadata);
}

function annotation(metadata: unknown): string | null {
  const annotations = metadata !== null && typeof metadata === 'object' ? (metadata as { annotations?: unknown }).annotations : undefined;
  const value = annotations !== null && typeof annotations === 'object' ? (annotations as Record<string, unknown>)[BREAK_GLASS_ANNOTATION] : undefined;
  return typeof value === 'string' && value.trim() !== '' ? value.trim() : null;
}

