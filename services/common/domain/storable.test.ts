import { describe, expect, it } from 'vitest';
import { sha256Digest } from './digest.ts';
import type { SignatureRecord } from './signature.ts';
import { isSetAside, isStorableText, storableJson, storableSignature, storableText } from './storable.ts';

const verified: SignatureRecord = {
  format: 'cosign_attestation',
  materialDigest: sha256Digest('material'),
  sourceDigest: sha256Digest('source'),
  layerIndex: 0,
  layerDigest: sha256Digest('layer'),
  payload: Buffer.from('{}'),
  subjectBytes: null,
  layerAnnotations: { 'dev.sigstore.cosign/certificate': 'PEM' },
  verdict: {
    outcome: 'verified',
    reason: null,
    identity: { kind: 'email', subject: 'alice@example.com', issuer: 'https://accounts.example.com' },
    claims: { slsaBuilderId: 'https://builder.example' },
    key: { fingerprint: 'sha256:abc', source: 'certificate', name: null },
    certificate: { fingerprint: 'sha256:def', notBefore: new Date('2026-01-01T00:00:00Z'), notAfter: new Date('2026-01-01T00:10:00Z') },
    rekor: { logId: 'c0ffee', logIndex: '9223372036854775807', integratedTime: new Date('2026-01-01T00:01:00Z') },
    tsaTime: null,
    predicateType: 'https://slsa.dev/provenance/v1',
    annotations: null,
    trustRootVersion: sha256Digest('root'),
  },
};

describe('storable text', () => {
  it('replaces NUL and lone surrogates with U+FFFD, and leaves everything else alone', () => {
    expect(storableText('a\u0000b')).toBe('a\ufffdb');
    expect(storableText('x\ud800y\udfffz')).toBe('x\ufffdy\ufffdz');
    expect(storableText('😀 \u202e é \ufffd')).toBe('😀 \u202e é \ufffd');
    expect(isStorableText('\ud83d\ude00')).toBe(true);
    expect(isStorableText('\ud83d')).toBe(false);
  });

  it('reaches keys and values at any depth', () => {
    expect(storableJson({ 'k\u0000': ['v\ud800', { n: 1, deep: { '\udc00': null } }] })).toEqual({ 'k\ufffd': ['v\ufffd', { n: 1, deep: { '\ufffd': null } }] });
  });
});

describe('storableSignature', () => {
  it('leaves a clean record as it is', () => {
    expect(storableSignature(verified)).toEqual(verified);
  });

  it('sanitises descriptive text and keeps the verdict', () => {
    const s = storableSignature({ ...verified, verdict: { ...verified.verdict, reason: 'why\u0000', claims: { slsaBuilderId: 'b\u0000' } } });
    expect(s.verdict).toMatchObject({ outcome: 'verified', reason: 'why\ufffd', claims: { slsaBuilderId: 'b\ufffd' }, identity: verified.verdict.identity });
  });

  it.each([
    ['a NUL in the subject', { identity: { ...verified.verdict.identity!, subject: 'alice@example.com\u0000' } }, 'signer subject'],
    ['U+FFFD in the issuer (invalid UTF-8)', { identity: { ...verified.verdict.identity!, issuer: 'https://\ufffd' } }, 'signer issuer'],
    ['a lone surrogate in the predicate type', { predicateType: 'https://slsa.dev/\ud800' }, 'predicate type'],
    ['a log index beyond 64 bits', { rekor: { ...verified.verdict.rekor!, logIndex: '9223372036854775808' } }, 'Rekor log index'],
    ['an integrated time that is no time', { rekor: { ...verified.verdict.rekor!, integratedTime: new Date(Number.NaN) } }, 'Rekor integrated time'],
    ['a certificate valid from year 0', { certificate: { ...verified.verdict.certificate!, notBefore: new Date('0000-06-01T00:00:00Z') } }, 'certificate validity start'],
  ] as const)('%s: malformed, proving nothing', (_, change, field) => {
    const s = storableSignature({ ...verified, verdict: { ...verified.verdict, ...change } });
    expect(s.verdict).toMatchObject({ outcome: 'malformed', identity: null, key: null, certificate: null, rekor: null, claims: {} });
    expect(s.verdict.reason).toContain(field);
    expect(s.verdict.reason).toMatch(/instead of verified$/);
    expect(isSetAside(s.verdict)).toBe(true);
  });

  it('a layer annotation that cannot be stored as it is: malformed, its predicate type and the sanitised annotations kept', () => {
    const s = storableSignature({ ...verified, layerAnnotations: { ...verified.layerAnnotations, 'org.example.scan': 'clean\u0000' } });
    expect(s.verdict).toMatchObject({ outcome: 'malformed', identity: null, predicateType: verified.verdict.predicateType });
    expect(s.verdict.reason).toContain('"org.example.scan"');
    expect(s.layerAnnotations).toEqual({ ...verified.layerAnnotations, 'org.example.scan': 'clean\ufffd' });
  });
});
