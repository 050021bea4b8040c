import { z } from 'zod';
import type { DecisionMode } from '../domain/decision.ts';
import { normalizeRegistry } from '../domain/image-ref.ts';
import type { PolicyRules } from './policy.ts';

// The policy's rollout controls: modes, namespace scopes, dated exemptions and break-glass. What
// they mean at admission is in `namespaces.ts` (which scope a namespace is in) and in the API's
// admission handler (what a mode, an exemption or break-glass does to the answer).

export type { DecisionMode };
export const DECISION_MODES = ['enforce', 'warn', 'audit'] as const satisfies readonly DecisionMode[];

/** A mode when the policy names none: `enforce`, so a policy written before modes means what it meant. */
export const DEFAULT_MODE: DecisionMode = 'enforce';

/** Rules that apply in some namespaces only, on top of (and before) the policy's top-level rules. */
export interface PolicyScope extends PolicyRules {
  readonly name: string;
  /** Namespace names or globs (`team-*`). */
  readonly namespaces: readonly string[];
  /** The scope's mode; null takes the policy's. */
  readonly mode: DecisionMode | null;
}

/** A dated exception: matching images are admitted whatever their decision, until `expires`. */
export interface Exemption {
  /** Where it is written, e.g. `exemptions.0`: named in warnings and records. */
  readonly name: string;
  /** `registry` (normalised) + image-path glob, as the policy's own patterns. */
  readonly images: readonly { readonly registry: string; readonly pattern: string }[];
  /** Namespace names or globs it applies in; null applies in every namespace. */
  readonly namespaces: readonly string[] | null;
  readonly reason: string;
  /** Epoch milliseconds after which it no longer applies. */
  readonly expires: number;
}

export interface Rollout {
  readonly mode: DecisionMode;
  readonly scopes: readonly PolicyScope[];
  readonly exemptions: readonly Exemption[];
  readonly breakGlassNamespaces: readonly string[];
}

export const ModeSchema = z.enum(DECISION_MODES, { error: `expected one of ${DECISION_MODES.join(', ')}` });

/** A namespace name (DNS-1123 label) or a glob of them. */
const NamespaceGlob = z
  .string()
  .min(1)
  .max(253)
  .regex(/^[a-z0-9\-*?[\]{},!]+$/, 'expected a namespace name or glob (lower-case letters, digits, -, * ? [..] {..})');
const Namespaces = z.array(NamespaceGlob).min(1);

export function ScopeSchema<S extends z.core.$ZodLooseShape>(sections: S) {
  return z.strictObject({ namespaces: Namespaces, mode: ModeSchema.optional(), ...sections });
}

export const ExemptionSchema = z.strictObject({
  images: z.array(z.string().min(3).regex(/^[^/\s]+\/\S+$/, 'expected registry/image-path-glob, e.g. docker.io/library/nginx or ghcr.io/acme/**')).min(1),
  namespaces: Namespaces.optional(),
  reason: z.string().trim().min(1, 'say why the exemption exists'),
  expires: z.iso.datetime({ offset: true, error: 'expected an RFC 3339 date and time with its zone, e.g. 2026-12-31T18:00:00Z' }),
});

export const BreakGlassSchema = z.strictObject({ namespaces: Namespaces });

const SCOPE_NAME = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;

interface RawRollout<R> {
  readonly mode?: DecisionMode | undefined;
  readonly scopes?: Readonly<Record<string, R & { namespaces: string[]; mode?: DecisionMode | undefined }>> | undefined;
  readonly exemptions?: readonly z.infer<typeof ExemptionSchema>[] | undefined;
  readonly break_glass?: z.infer<typeof BreakGlassSchema> | undefined;
}

/**
 * The rollout controls of a parsed policy. `toRules` parses a scope's sections like the top
 * level's (issue paths prefixed with `scopes.<name>.`). A namespace glob listed by two scopes is
 * an error: every namespace must belong to one scope, whatever order the file is in.
 */
export function toRollout<R>(raw: RawRollout<R>, toRules: (sections: R, at: string) => PolicyRules, issues: string[]): Rollout {
  const scopes: PolicyScope[] = [];
  const owner = new Map<string, string>();
  for (const [name, scope] of Object.entries(raw.scopes ?? {}).sort(([a], [b]) => (a < b ? -1 : 1))) {
    if (!SCOPE_NAME.test(name)) {
      issues.push(`scopes.${name}: a scope name is lower-case letters, digits and - (a DNS label)`);
    }
    scope.namespaces.forEach((ns, i) => {
      const other = owner.get(ns);
      if (other !== undefined) {
        issues.push(`scopes.${name}.namespaces.${i}: ${JSON.stringify(ns)} is already in scope ${other}; a namespace glob belongs to one scope`);
      }
      owner.set(ns, name);
    });
    scopes.push({ name, namespaces: scope.namespaces, mode: scope.mode ?? null, ...toRules(scope, `scopes.${name}.`) });
  }
  const exemptions = (raw.exemptions ?? []).map((e, i): Exemption => ({
    name: `exemptions.${i}`,
    images: e.images.map((image) => {
      const slash = image.indexOf('/');
      return { registry: normalizeRegistry(image.slice(0, slash)), pattern: image.slice(slash + 1) };
    }),
    namespaces: e.namespaces ?? null,
    reason: e.reason,
    expires: Date.parse(e.expires),
  }));
  return { mode: raw.mode ?? DEFAULT_MODE, scopes, exemptions, breakGlassNamespaces: raw.break_glass?.namespaces ?? [] };
}
