import { z } from 'zod';
import type { Digest } from '../../../common/domain/digest.ts';
import { parseStatement, signedEntity, tlogEntryKeys } from '../bundle.ts';
import { cosignAttestationToBundle, type CosignLayer, layerMaterial, rekorSummary } from '../cosign-layer.ts';
import type { Evidence } from '../evidence.ts';
import { Failure } from '../failure.ts';
import type { NormalisedSignature } from '../normalised.ts';

const DsseEnvelopeJson = z.object({
  payloadType: z.string().max(1024),
  payload: z.base64(),
  signatures: z.array(z.object({ keyid: z.string().max(1024).optional(), sig: z.base64().min(1) })),
});

/**
 * Reads a cosign `.att` layer attached to `subject`: the DSSE envelope in its payload, the in-toto
 * statement inside, and the certificate or key and Rekor bundle in its annotations.
 */
export function normaliseCosignAttestation(layer: CosignLayer, subject: Digest, evidence: Evidence): NormalisedSignature {
  const envelope = parseEnvelope(layer.payload);
  const statement = parseStatement(envelope.payloadType, Buffer.from(envelope.payload, 'base64'));
  evidence.showStatement(statement);
  const { cert, rekor } = layerMaterial(layer, null);
  if (rekor !== null) {
    evidence.rekor = rekorSummary(rekor);
  }
  const bundle = cosignAttestationToBundle(envelope, cert, rekor);
  const normalised: NormalisedSignature = {
    entity: signedEntity(bundle),
    certificate: cert,
    keyHint: null,
    // Never null: a keyless attestation whose Rekor entry names no readable key is tlog_invalid.
    loggedKeys: bundle.verificationMaterial.tlogEntries.flatMap((e) => tlogEntryKeys(e)),
    binding: { kind: 'statement', statement, subject },
  };
  if (cert !== null) {
    evidence.showCertificate(cert);
    if (rekor === null) {
      throw new Failure('tlog_missing', 'keyless attestation without a Rekor bundle: nothing proves the certificate was valid when it signed');
    }
  }
  return normalised;
}

function parseEnvelope(bytes: Buffer): z.infer<typeof DsseEnvelopeJson> {
  let json: unknown;
  try {
    json = JSON.parse(bytes.toString('utf8'));
  } catch {
    throw new Failure('malformed', 'the attestation layer is not a JSON DSSE envelope');
  }
  const parsed = DsseEnvelopeJson.safeParse(json);
  if (!parsed.success) {
    throw new Failure('malformed', `the attestation layer is not a DSSE envelope: ${z.prettifyError(parsed.error)}`);
  }
  if (parsed.data.signatures.length !== 1) {
    throw new Failure('malformed', `the DSSE envelope has ${parsed.data.signatures.length} signatures; exactly one is required`);
  }
  return parsed.data;
}
