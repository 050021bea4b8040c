import type { TLSSocket } from 'node:tls';
import type { FastifyRequest } from 'fastify';
import type { ImageDecision } from './decisions/lookup.ts';
import { presentedToken, tokenDigests, tokenMatches } from './tokens.ts';

/**
 * Who may see signer identities on the decision endpoints. Allow or deny and the reason are for
 * anyone who can reach the port (admission points must not need a secret to be denied); the
 * signers (e-mail addresses, workflow identities, key fingerprints) only for a caller that
 * presents an API token or a client certificate the server verified (mTLS). Without
 * SIGNET_API_TOKENS every caller may, as the README says.
 */
export function signerDisclosure(tokens: readonly string[]): (req: FastifyRequest) => boolean {
  if (tokens.length === 0) {
    return () => true;
  }
  const digests = tokenDigests(tokens);
  return (req) => {
    const socket = req.raw.socket as Partial<TLSSocket>;
    if (socket.encrypted === true && socket.authorized === true) {
      return true;
    }
    return tokenMatches(presentedToken(req.headers.authorization), digests);
  };
}

/**
 * The decision's message without signer identities, naming the rule that decided. What a denied
 * user reads in kubectl (AdmissionReview, Gatekeeper errors) is always this.
 */
export function publicMessage(d: ImageDecision): string {
  const rule = d.rule ?? 'the policy';
  if (d.reason === 'verified') {
    return `signed as ${rule} requires`;
  }
  if (d.reason === 'identity_mismatch') {
    return `no signature matches ${rule}: the signer's identity, issuer or claims are not the ones it names`;
  }
  // Every other message names counts, rules, registries or verification failures, never a signer.
  return d.message;
}

/** The decision as a caller without the right to see signers gets it. */
export function withoutSigners(d: ImageDecision): ImageDecision {
  return d.signers.length === 0 && d.reason !== 'verified' && d.reason !== 'identity_mismatch' ? d : { ...d, signers: [], message: publicMessage(d) };
}
