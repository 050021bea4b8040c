import { describe, expect, it } from 'vitest';
import { parseDigest } from '../../common/domain/digest.ts';
import { EMPTY_POLICY } from '../../common/policy/load.ts';
import { parsePolicy } from '../../common/policy/policy.ts';
import { cosignLayersFromFixture, fixturePath, readFixture } from '../../../test/helpers/fixtures.ts';
import { ConfiguredVerifier } from './from-config.ts';
import { loadTrustedRoot } from './trust.ts';

const CONNAISSEUR = 'cosign/connaisseur-testimage/manifests';
const ALICE_SUBJECT = parseDigest('sha256:071bf7a986f1ca9cb2a1f0bc8392822a7777f90d58f2d2c6f271913e08de7c81');

describe('ConfiguredVerifier', () => {
  it('trusts the keys the policy in force names, and changes version with them', async () => {
    const publicGood = await loadTrustedRoot(fixturePath('trust-roots/public-good/trusted_root.json'));
    const [layer] = cosignLayersFromFixture(CONNAISSEUR, `sha256-${ALICE_SUBJECT.slice(7)}.sig.json`);
    const verifier = new ConfiguredVerifier({ roots: [publicGood], keys: [] }, EMPTY_POLICY);
    expect(verifier.verifyCosignLayer(layer!, ALICE_SUBJECT).outcome).toBe('untrusted_root');
    const before = verifier.version;

    const alice = readFixture('cosign/connaisseur-testimage/keys/alice.pub').toString('utf8');
    verifier.setPolicy(parsePolicy(JSON.stringify({ allow_with_verification: { 'docker.io': { 'team/*': { key: alice } } } })));
    expect(verifier.keyCount).toBe(1);
    expect(verifier.version).not.toBe(before);
    expect(verifier.verifyCosignLayer(layer!, ALICE_SUBJECT).outcome).toBe('verified');

    verifier.setPolicy(EMPTY_POLICY);
    expect(verifier.version).toBe(before);
    expect(verifier.verifyCosignLayer(layer!, ALICE_SUBJECT).outcome).toBe('untrusted_root');
  });

  it('verifies on its pool what it verifies on the calling thread, through a policy change', async () => {
    const publicGood = await loadTrustedRoot(fixturePath('trust-roots/public-good/trusted_root.json'));
    const [layer] = cosignLayersFromFixture(CONNAISSEUR, `sha256-${ALICE_SUBJECT.slice(7)}.sig.json`);
    const verifier = new ConfiguredVerifier({ roots: [publicGood], keys: [] }, EMPTY_POLICY, { threads: 2 });
    try {
      expect(verifier.threads).toBe(2);
      expect(verifier.checks).not.toBe(verifier);
      expect(await verifier.checks.verifyCosignLayer(layer!, ALICE_SUBJECT)).toEqual(verifier.verifyCosignLayer(layer!, ALICE_SUBJECT));
      const alice = readFixture('cosign/connaisseur-testimage/keys/alice.pub').toString('utf8');
      verifier.setPolicy(parsePolicy(JSON.stringify({ allow_with_verification: { 'docker.io': { 'team/*': { key: alice } } } })));
      expect(verifier.checks.version).toBe(verifier.version);
      const pooled = await verifier.checks.verifyCosignLayer(layer!, ALICE_SUBJECT);
      expect(pooled.outcome).toBe('verified');
      expect(pooled).toEqual(verifier.verifyCosignLayer(layer!, ALICE_SUBJECT));
    } finally {
      await verifier.close();
    }
    const inProcess = new ConfiguredVerifier({ roots: [publicGood], keys: [] }, EMPTY_POLICY);
    expect(inProcess.threads).toBe(0);
    expect(inProcess.checks).toBe(inProcess);
  });

  it('tries a root refreshed over TUF first, keeping the files as the fallback', async () => {
    const publicGood = await loadTrustedRoot(fixturePath('trust-roots/public-good/trusted_root.json'));
    const github = await loadTrustedRoot(fixturePath('trust-roots/github-trusted-root.json'));
    const verifier = new ConfiguredVerifier({ roots: [github, publicGood], keys: [] }, EMPTY_POLICY);
    expect(verifier.roots.map((r) => r.version)).toEqual([github.version, publicGood.version]);
    verifier.setTufRoot({ ...publicGood, path: 'tuf:trusted_root.json' });
    // The same root (same version) is not tried twice.
    expect(verifier.roots.map((r) => r.path)).toEqual(['tuf:trusted_root.json', github.path]);
  });
});
