import type { SignatureFormat } from './signature.ts';

/**
 * cosign's `--type` shorthands for predicate types (cosign `pkg/policy/attestation.go`, as
 * policy-controller and Kyverno read them). Anything else is taken as the predicate type's URI.
 */
export const PREDICATE_SHORTHANDS: Readonly<Record<string, string>> = {
  custom: 'https://cosign.sigstore.dev/attestation/v1',
  slsaprovenance: 'https://slsa.dev/provenance/v0.2',
  slsaprovenance02: 'https://slsa.dev/provenance/v0.2',
  slsaprovenance1: 'https://slsa.dev/provenance/v1',
  spdx: 'https://spdx.dev/Document',
  spdxjson: 'https://spdx.dev/Document',
  cyclonedx: 'https://cyclonedx.org/bom',
  link: 'https://in-toto.io/Link/v1',
  vuln: 'https://cosign.sigstore.dev/attestation/vuln/v1',
  openvex: 'https://openvex.dev/ns',
};

/** The predicate type URI a policy's `predicate-type` names (a shorthand, or the URI itself). */
export function predicateTypeUri(name: string): string {
  return PREDICATE_SHORTHANDS[name] ?? name;
}

function json(bytes: Buffer | string): unknown {
  try {
    return JSON.parse(typeof bytes === 'string' ? bytes : bytes.toString('utf8'));
  } catch {
    return null;
  }
}

function isObject(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

/**
 * The in-toto statement inside a stored attestation's material: the DSSE envelope of a cosign
 * `.att` layer, or the `dsseEnvelope` of a Sigstore bundle. Read from the ledger, with no
 * signature check: the material was verified when it was indexed, and only verified rows count.
 */
export function statementOf(format: SignatureFormat, payload: Buffer): Record<string, unknown> | null {
  const outer = json(payload);
  if (!isObject(outer)) {
    return null;
  }
  const envelope = format === 'sigstore_bundle' ? outer.dsseEnvelope : format === 'cosign_attestation' ? outer : null;
  if (!isObject(envelope) || typeof envelope.payload !== 'string') {
    return null;
  }
  const statement = json(Buffer.from(envelope.payload, 'base64'));
  return isObject(statement) ? statement : null;
}
