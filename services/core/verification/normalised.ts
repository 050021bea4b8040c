import type { KeyObject, X509Certificate } from 'node:crypto';
import type { SignedEntity } from '@sigstore/verify';
import { type InTotoStatement, statementNames } from './bundle.ts';
import { Failure } from './failure.ts';

/**
 * A signature of any format (cosign `.sig` or `.att` layer, Sigstore bundle), read into what the
 * one verification pipeline checks. Reading it has made every check of the format's own material
 * (payload type, Rekor body, DSSE signature count, certificate chain order, …).
 */
export interface NormalisedSignature {
  /** What `@sigstore/verify` checks: the signature over the content, key material, log entries, timestamps. */
  readonly entity: SignedEntity;
  /** The signing certificate (leaf) of a keyless signature; null when a key signed. */
  readonly certificate: X509Certificate | null;
  /** A key-based bundle's hint naming the key: trusted keys it names are tried first. */
  readonly keyHint: string | null;
  /**
   * The keys the transparency-log entry names (from its certificate or public key): the signer's
   * must be among them. Null when there is nothing to hold the signer to; an empty list holds a
   * certificate to nothing it can match, and a key to nothing at all.
   */
  readonly loggedKeys: readonly KeyObject[] | null;
  /** What ties the signature to the subject it is attached to. */
  readonly binding: SubjectBinding;
}

export type SubjectBinding =
  /** A cosign simple-signing payload names the manifest digest it signs. */
  | { readonly kind: 'payload'; readonly signed: string; readonly subject: string }
  /** An in-toto statement names its subjects' digests. */
  | { readonly kind: 'statement'; readonly statement: InTotoStatement; readonly subject: string }
  /**
   * A message signature signs the subject's own bytes; its digest was matched to the subject's
   * when it was read, before anything else (a signature made for another artifact says so first).
   */
  | { readonly kind: 'message' };

/** The check sigstore cannot do: the signed content must name the digest the signature is attached to. */
export function assertBoundToSubject(binding: SubjectBinding): void {
  switch (binding.kind) {
    case 'payload':
      if (binding.signed !== binding.subject) {
        throw new Failure('digest_mismatch', `the payload signs ${binding.signed.slice(0, 80)}, not ${binding.subject} (signature copied from another image)`);
      }
      return;
    case 'statement':
      assertStatementNames(binding.statement, binding.subject);
      return;
    case 'message':
      return;
  }
}

/** The statement's subjects must include the image: otherwise it is about another artifact (replayed). */
function assertStatementNames(statement: InTotoStatement, subject: string): void {
  const colon = subject.indexOf(':');
  if (!statementNames(statement, subject.slice(0, colon), subject.slice(colon + 1))) {
    const named = statement.subject.map((s) => (s.digest.sha256 === undefined ? (s.name ?? '?') : `sha256:${s.digest.sha256}`)).slice(0, 3);
    throw new Failure('digest_mismatch', `the in-toto statement is about ${named.join(', ').slice(0, 200)}, not ${subject} (attestation copied from another artifact)`);
  }
}
