import { z } from 'zod';
import { Failure } from '../failure.ts';

const DsseEnvelopeJson = z.object({
  payloadType: z.string().max(1024),
  payload: z.base64(),
  signatures: z.array(z.object({ keyid: z.string().max(1024).optional(), sig: z.base64().min(1) })),
});

export function parseEnvelope(bytes: Buffer): z.infer<typeof DsseEnvelopeJson> {
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
