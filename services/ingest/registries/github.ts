import { z } from 'zod';
import { isDigest } from '../../common/domain/digest.ts';
import type { NormalizedDelivery } from '../../common/domain/registry-event.ts';
import { WebhookError } from '../../common/errors.ts';
import { DeliveryBuilder, parseBody, splitImageUrl, type NormalizeContext } from './delivery-builder.ts';

const Package = z.looseObject({
  name: z.string().max(512).optional(),
  ecosystem: z.string().max(64).optional(),
  package_type: z.string().max(64).optional(),
  updated_at: z.string().max(64).nullish(),
  package_version: z
    .looseObject({
      id: z.number().optional(),
      name: z.string().max(512).optional(),
      version: z.string().max(512).optional(),
      updated_at: z.string().max(64).nullish(),
      created_at: z.string().max(64).nullish(),
      package_url: z.string().max(1024).optional(),
      container_metadata: z
        .looseObject({
          tag: z.looseObject({ name: z.string().max(256).optional(), digest: z.string().max(256).optional() }).nullish(),
          manifest: z.looseObject({ digest: z.string().max(256).optional() }).nullish(),
        })
        .nullish(),
    })
    .nullish(),
});

const Body = z.looseObject({
  action: z.string().max(64),
  package: Package.optional(),
  registry_package: Package.optional(),
});

const CONTAINER = new Set(['docker', 'container']);

/**
 * Normalises a GitHub `package` or `registry_package` webhook (`published` and `updated`, container
 * packages only; npm, maven and the rest are ignored). The digest is the first valid one of
 * `container_metadata.manifest.digest`, `container_metadata.tag.digest`, `package_version.name` and
 * `package_version.version`: GitHub's published examples put a 40-hex git SHA in the first two.
 * Without any, a non-empty tag is resolved; otherwise the event is rejected. The image comes from
 * `package_url` (`ghcr.io/Owner/name:tag`), lower-cased as GHCR names are.
 */
export function normalizeGitHub(body: unknown, ctx: NormalizeContext, event: string | null): NormalizedDelivery {
  const out = new DeliveryBuilder();
  const eventId = ctx.deliveryId ?? ctx.bodyHash;
  if (event !== null && event !== 'package' && event !== 'registry_package') {
    out.ignore(0, eventId, `GitHub event "${event}" is not a package event`);
    return out.build();
  }
  const doc = parseBody(Body, body, 'a GitHub package or registry_package event');
  const pkg = doc.package ?? doc.registry_package;
  if (pkg === undefined) {
    throw new WebhookError('MALFORMED', 'not a GitHub package event: it has neither "package" nor "registry_package"');
  }
  const kind = [pkg.ecosystem, pkg.package_type].map((k) => k?.toLowerCase());
  if (!kind.some((k) => k !== undefined && CONTAINER.has(k))) {
    out.ignore(0, eventId, `package ecosystem "${pkg.ecosystem ?? pkg.package_type ?? 'unknown'}" is not a container`);
    return out.build();
  }
  if (doc.action !== 'published' && doc.action !== 'updated') {
    out.ignore(0, eventId, `action "${doc.action}" is not published or updated`);
    return out.build();
  }
  const version = pkg.package_version;
  const meta = version?.container_metadata;
  const candidates = [meta?.manifest?.digest, meta?.tag?.digest, version?.name, version?.version];
  const url = splitImageUrl(version?.package_url);
  const at = [version?.updated_at, version?.created_at, pkg.updated_at].find((t) => t !== null && t !== undefined && Date.parse(t) > Date.UTC(2000, 0));
  out.push(
    0,
    {
      eventId,
      registry: ctx.registry ?? url?.host,
      repository: url?.repository.toLowerCase(),
      digest: candidates.find(isDigest) ?? candidates.find((c) => c !== undefined && c !== ''),
      tag: meta?.tag?.name,
      at: at ?? ctx.receivedAt,
    },
    { withoutDigest: 'resolve-tag' },
  );
  return out.build();
}
