// Anyone who can attach an artifact to an image (a scanner account, a CI bot) must not be able to
// keep a correctly signed image from being indexed. Postgres refuses NUL in text and jsonb and
// lone UTF-16 surrogates in jsonb; an artifact carrying them in an annotation, a predicate or an
// in-toto subject name once failed the whole ledger write on every retry, and the signed image
// stayed unknown (denied). Through a real docker-registry: the image is allowed, the poisoned
// artifact is recorded `malformed` (or its descriptive text sanitised), and no job retries.
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Digest } from '../../services/common/domain/digest.ts';
import { COSIGN_SIGN_PREDICATE } from '../../services/common/domain/signature.ts';
import { reverifyLedger } from '../../services/core/reverify.ts';
import { SLSA_V1 } from '../../services/core/verification/bundle.ts';
import { loadTrustedRoots } from '../../services/core/verification/trust.ts';
import { createSignatureVerifier } from '../../services/core/verification/verifier.ts';
import { pushBundleReferrer, pushCosignAttestations, pushCosignSignatures } from '../helpers/cosign-push.ts';
import { OCI_MANIFEST, pushRandomImage } from '../helpers/oci-push.ts';
import { eventually } from '../helpers/signet.ts';
import { policyAllowing, startTestStack, type TestStack } from '../helpers/stack.ts';
import { inTotoStatement, simpleSigningPayload } from '../signer/signer.ts';

const ALICE = { email: 'alice@example.com', issuer: 'https://accounts.example.com' };
const SCANNER = { email: 'scanner@example.com', issuer: 'https://accounts.example.com' };

let stack: TestStack;

beforeAll(async () => {
  stack = await startTestStack({ name: 'poison', policy: (host) => policyAllowing(host, ALICE) });
});

afterAll(async () => {
  await stack?.stop();
});

function rowsOf(repo: string, digest: Digest) {
  return stack.db.db
    .selectFrom('signatures as s')
    .innerJoin('manifests as m', 'm.id', 's.manifest_id')
    .innerJoin('repositories as r', 'r.id', 'm.repository_id')
    .select(['s.format', 's.kind', 's.outcome', 's.reason', 's.subject', 's.identity_id', 's.predicate_type', 's.claims', 's.annotations', 'm.status'])
    .where('r.name', '=', repo)
    .where('m.digest', '=', digest)
    .orderBy('s.id')
    .execute();
}

async function decision(repo: string, digest: Digest): Promise<{ allowed: boolean; reason: string; message: string }> {
  const res = await stack.signet.app.inject({ method: 'GET', url: `/v1/decisions?image=${encodeURIComponent(`${stack.host}/${repo}@${digest}`)}` });
  return res.json();
}

/** Waits until the image is allowed (the poisoned artifact did not block the ledger write). */
function allowed(repo: string, digest: Digest) {
  return eventually(
    async () => {
      const d = await decision(repo, digest);
      return d.allowed ? d : undefined;
    },
    `${repo}@${digest} allowed`,
    30_000,
  );
}

/** Every index job has finished, each at its first attempt: none failed, none waits for a retry. */
async function noRetries(): Promise<void> {
  const queue = stack.signet.queue!;
  await eventually(async () => {
    const c = await queue.getJobCounts('waiting', 'active', 'delayed', 'prioritized');
    return Object.values(c).every((n) => n === 0) ? true : undefined;
  }, 'the index queue is idle');
  const failed = await queue.getJobs(['failed']);
  expect(failed.map((j) => `${j.id}: ${j.failedReason}`)).toEqual([]);
  const completed = await queue.getJobs(['completed']);
  expect(completed.length).toBeGreaterThan(0);
  expect(completed.filter((j) => j.attemptsMade > 1).map((j) => `${j.id}: ${j.attemptsMade} attempts`)).toEqual([]);
}

describe('a poisoned artifact never blocks a signed image', () => {
  it('an .att whose layer annotation holds a NUL: the image is allowed, the attestation is malformed, no job retries', async () => {
    const repo = 'poison/att';
    const image = await pushRandomImage(stack.registry.url, repo, 'v1');
    const att = await stack.sigstore.attestKeyless(inTotoStatement(image.digest, SLSA_V1, {}), SCANNER);
    // Pushed before the signature: every index of the image from now on sees it.
    await pushCosignAttestations(stack.registry.url, repo, image.digest, [{ ...att, annotations: { ...att.annotations, 'org.example.scan': 'clean\u0000!' } }]);
    await pushCosignSignatures(stack.registry.url, repo, image.digest, [
      await stack.sigstore.signKeyless(simpleSigningPayload(`${stack.host}/${repo}`, image.digest), ALICE),
    ]);

    expect(await allowed(repo, image.digest)).toMatchObject({ allowed: true, reason: 'verified' });
    const rows = await rowsOf(repo, image.digest);
    const sig = rows.find((r) => r.format === 'cosign_legacy');
    const poisoned = rows.find((r) => r.format === 'cosign_attestation');
    expect(sig).toMatchObject({ kind: 'signature', outcome: 'verified', subject: ALICE.email, status: 'verified' });
    expect(poisoned).toMatchObject({ kind: 'attestation', outcome: 'malformed', identity_id: null, subject: null, predicate_type: SLSA_V1 });
    expect(poisoned!.reason).toContain('org.example.scan');
    // Kept for the record, with the NUL replaced (U+FFFD), never dropped silently.
    expect(poisoned!.annotations['org.example.scan']).toBe('clean\ufffd!');
    await noRetries();
    // What is stored is not what was found: re-verifying the ledger leaves it malformed.
    const verifier = createSignatureVerifier(await loadTrustedRoots([join(stack.tmp, 'trusted_root.json')]), []);
    const again = await reverifyLedger(stack.db.db, verifier, { announce: () => Promise.resolve(), sweep: () => Promise.resolve(0) }, { dryRun: true });
    expect(again.transitions).toEqual({});
  });

  it('referrers with a lone surrogate in a layer annotation, NUL in a predicate and in an in-toto subject name: the image is allowed', async () => {
    const repo = 'poison/referrers';
    const image = await pushRandomImage(stack.registry.url, repo, 'v1');
    const subject = { digest: image.digest, mediaType: OCI_MANIFEST, size: image.bytes.length };
    // A signature bundle by alice, but its layer carries a lone surrogate: material Signet cannot keep as it is.
    const aliceBundle = await stack.sigstore.signDsseBundle(inTotoStatement(image.digest, COSIGN_SIGN_PREDICATE, {}), ALICE);
    await pushBundleReferrer(stack.registry.url, repo, subject, aliceBundle, COSIGN_SIGN_PREDICATE, { layerAnnotations: { 'org.example.note': 'bad \ud800 text' } });
    // SLSA provenance whose builder id holds a NUL: a descriptive claim, sanitised; the attestation stays verified.
    const provenance = { runDetails: { builder: { id: 'https://builder.example/\u0000evil' } }, buildDefinition: { buildType: 'https://example/\udfff' } };
    await pushBundleReferrer(stack.registry.url, repo, subject, await stack.sigstore.signDsseBundle(inTotoStatement(image.digest, SLSA_V1, provenance), SCANNER), SLSA_V1);
    // An attestation about something else, named with a NUL (no sha256 digest): the reason quotes the name.
    const elsewhere = { ...inTotoStatement(image.digest, SLSA_V1, {}), subject: [{ name: 'evil\u0000name', digest: { sha512: 'ab'.repeat(64) } }] };
    await pushBundleReferrer(stack.registry.url, repo, subject, await stack.sigstore.signDsseBundle(elsewhere, SCANNER), SLSA_V1);
    await pushCosignSignatures(stack.registry.url, repo, image.digest, [
      await stack.sigstore.signKeyless(simpleSigningPayload(`${stack.host}/${repo}`, image.digest), ALICE),
    ]);

    expect(await allowed(repo, image.digest)).toMatchObject({ allowed: true, reason: 'verified' });
    const rows = await eventually(async () => {
      const r = await rowsOf(repo, image.digest);
      return r.length >= 4 ? r : undefined;
    }, 'four signature rows');
    const note = rows.find((r) => r.format === 'sigstore_bundle' && r.annotations['org.example.note'] !== undefined);
    expect(note).toMatchObject({ outcome: 'malformed', identity_id: null, subject: null });
    expect(note!.annotations['org.example.note']).toBe('bad \ufffd text');
    expect(note!.reason).toContain('org.example.note');
    const slsa = rows.find((r) => r.outcome === 'verified' && r.predicate_type === SLSA_V1);
    expect(slsa).toMatchObject({ kind: 'attestation', subject: SCANNER.email });
    expect(slsa!.claims).toMatchObject({ slsaBuilderId: 'https://builder.example/\ufffdevil', slsaBuildType: 'https://example/\ufffd' });
    const replayed = rows.find((r) => r.outcome === 'digest_mismatch');
    expect(replayed!.reason).toContain('evil\ufffdname');
    expect(rows.find((r) => r.format === 'cosign_legacy')).toMatchObject({ outcome: 'verified', subject: ALICE.email });
    await noRetries();
  });
});
