// Offline validators for the objects in deploy/kubernetes: the kubernetes-models packages for
// built-in kinds and for the CRDs they ship (cert-manager, Kyverno, prometheus-operator), and zod
// schemas of Gatekeeper's resources (below) for the rest.
import { z } from 'zod';

/** API group → the package whose models hold its kinds (`<package>/<apiVersion>/<Kind>`). */
const MODEL_PACKAGES: Readonly<Record<string, string>> = {
  'cert-manager.io': '@kubernetes-models/cert-manager',
  'kyverno.io': '@kubernetes-models/kyverno',
  'monitoring.coreos.com': '@kubernetes-models/prometheus-operator',
};

type Validate = (object: unknown) => void;

/** A validator that throws with the offending path, or null when nothing here knows the kind. */
export async function validatorFor(apiVersion: string, kind: string): Promise<Validate | null> {
  const gatekeeper = GATEKEEPER[`${apiVersion}/${kind}`];
  if (gatekeeper !== undefined) {
    return (object) => {
      const result = gatekeeper.safeParse(object);
      if (!result.success) {
        throw new Error(result.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; '));
      }
    };
  }
  const group = apiVersion.includes('/') ? apiVersion.slice(0, apiVersion.indexOf('/')) : '';
  const pkg = MODEL_PACKAGES[group] ?? 'kubernetes-models';
  type ModelClass = new (data: unknown) => { validate(): void };
  let Model: ModelClass | undefined;
  try {
    Model = ((await import(`${pkg}/${apiVersion}/${kind}`)) as Record<string, ModelClass | undefined>)[kind];
  } catch {
    return null;
  }
  return Model === undefined ? null : (object) => new Model(object).validate();
}

// Gatekeeper's CRDs (open-policy-agent/gatekeeper, charts/gatekeeper/crds) as strict zod schemas of
// the fields they define that Signet's manifests use: an unknown or misspelt field fails here,
// where the API server would reject it (its CRDs set preserveUnknownFields: false).
const name = z.string().regex(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/);
const namespaceGlob = z.string().regex(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\*|-\*)?$/);
const metadata = z.looseObject({ name, namespace: name.optional() });
const matchKinds = z.array(z.strictObject({ apiGroups: z.array(z.string()), kinds: z.array(z.string()) }));
const match = z.strictObject({
  scope: z.enum(['*', 'Cluster', 'Namespaced']).optional(),
  kinds: matchKinds.optional(),
  namespaces: z.array(namespaceGlob).optional(),
  excludedNamespaces: z.array(namespaceGlob).optional(),
  labelSelector: z.unknown().optional(),
  namespaceSelector: z.unknown().optional(),
  name: namespaceGlob.optional(),
});
const object = <T extends z.ZodRawShape>(apiVersion: string, kind: string, spec: z.ZodType) =>
  z.strictObject({ apiVersion: z.literal(apiVersion), kind: z.literal(kind), metadata, spec } as unknown as T);

const Provider = object('externaldata.gatekeeper.sh/v1beta1', 'Provider', z.strictObject({ url: z.url({ protocol: /^https$/ }), timeout: z.number().int().min(1), caBundle: z.string().min(1) }));
const ConstraintTemplate = object(
  'templates.gatekeeper.sh/v1',
  'ConstraintTemplate',
  z.strictObject({
    crd: z.strictObject({ spec: z.strictObject({ names: z.strictObject({ kind: z.string().min(1), shortNames: z.array(z.string()).optional() }), validation: z.unknown().optional() }) }),
    targets: z.array(z.strictObject({ target: z.literal('admission.k8s.gatekeeper.sh'), rego: z.string().min(1), libs: z.array(z.string()).optional() })).min(1),
  }),
);
const Constraint = object(
  'constraints.gatekeeper.sh/v1beta1',
  'SignetVerifiedImages',
  z.strictObject({ enforcementAction: z.enum(['deny', 'dryrun', 'warn']), match, parameters: z.unknown().optional() }),
);
const Assign = object(
  'mutations.gatekeeper.sh/v1',
  'Assign',
  z.strictObject({
    applyTo: z.array(z.strictObject({ groups: z.array(z.string()), kinds: z.array(z.string()), versions: z.array(z.string()) })).min(1),
    match,
    location: z.string().min(1),
    parameters: z.strictObject({
      assign: z.strictObject({
        value: z.unknown().optional(),
        fromMetadata: z.strictObject({ field: z.enum(['namespace', 'name']) }).optional(),
        externalData: z
          .strictObject({
            provider: name,
            dataSource: z.enum(['ValueAtLocation', 'Username']),
            failurePolicy: z.enum(['UseDefault', 'Ignore', 'Fail']),
            default: z.string().optional(),
          })
          .optional(),
      }),
      pathTests: z.array(z.strictObject({ subPath: z.string(), condition: z.enum(['MustExist', 'MustNotExist']) })).optional(),
    }),
  }),
);

const GATEKEEPER: Readonly<Record<string, z.ZodType>> = {
  'externaldata.gatekeeper.sh/v1beta1/Provider': Provider,
  'templates.gatekeeper.sh/v1/ConstraintTemplate': ConstraintTemplate,
  'constraints.gatekeeper.sh/v1beta1/SignetVerifiedImages': Constraint,
  'mutations.gatekeeper.sh/v1/Assign': Assign,
};
