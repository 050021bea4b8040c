import { describe, expect, it } from 'vitest';
import { readFixtureJson } from '../../../test/helpers/fixtures.ts';
import { testContext } from '../../../test/helpers/webhooks.ts';
import { normalizeAcr } from './acr.ts';

const DIR = 'webhooks/azure-acr';

describe('normalizeAcr', () => {
  it('turns the 2017 push example into a push of hello-world:v1', () => {
    const d = normalizeAcr(readFixtureJson(`${DIR}/webhook-push.2017-docs.json`), testContext());
    expect(d.events).toEqual([
      {
        kind: 'push',
        eventId: 'cb8c3971-9adc-488b-bdd8-43cbb4974ff5',
        registry: 'myregistry.azurecr.io',
        repository: 'hello-world',
        digest: 'sha256:80f0d5c8786bb9e621a45ece0db56d11cdc624ad20da9fe62e9d25490f331d7d',
        mediaType: 'application/vnd.docker.distribution.manifest.v2+json',
        tag: 'v1',
        at: '2017-11-17T16:52:01.343Z',
      },
    ]);
  });

  it('resolves the tag of the 2023 example, whose digest is redacted to sha256:xxxx…', () => {
    const d = normalizeAcr(readFixtureJson(`${DIR}/webhook-push.2023-docs.json`), testContext());
    expect(d.events).toEqual([expect.objectContaining({ kind: 'tag-push', registry: 'myregistry.azurecr.io', repository: 'hello-world', tag: 'v1' })]);
  });

  it('turns the 2017 delete into a delete and rejects the redacted 2023 one', () => {
    expect(normalizeAcr(readFixtureJson(`${DIR}/webhook-delete.2017-docs.json`), testContext()).events).toEqual([
      expect.objectContaining({ kind: 'delete', digest: 'sha256:80f0d5c8786bb9e621a45ece0db56d11cdc624ad20da9fe62e9d25490f331d7d' }),
    ]);
    const redacted = normalizeAcr(readFixtureJson(`${DIR}/webhook-delete.2023-docs.json`), testContext());
    expect(redacted.events).toEqual([]);
    expect(redacted.rejected).toHaveLength(1);
  });

  it('takes Event Grid ImagePushed deliveries and ignores other event types', () => {
    const grid = readFixtureJson<any[]>(`${DIR}/eventgrid-ImagePushed.2018-docs.json`);
    const d = normalizeAcr([...grid, { ...grid[0], id: 'x', eventType: 'ChartPushed' }], testContext());
    expect(d.events).toEqual([
      expect.objectContaining({ kind: 'push', registry: 'demo.azurecr.io', repository: 'aci-helloworld', tag: 'v1', digest: 'sha256:213bbc182920ab41e18edc2001e06abcca6735d87782d9cef68abd83941cf0e5' }),
    ]);
    expect(d.ignored).toEqual([expect.objectContaining({ index: 1, eventId: 'x' })]);
  });

  it('throws MALFORMED for a body that is no ACR event', () => {
    expect(() => normalizeAcr({ hello: 'world' }, testContext())).toThrow(/^not an Azure Container Registry webhook/);
  });
});
