import { describe, expect, it } from 'vitest';
import { readFixtureJson } from '../../../test/helpers/fixtures.ts';
import { WebhookError } from '../../common/errors.ts';
import { normalizeDistribution } from './distribution.ts';

const DIR = 'webhooks/distribution';
type Envelope = { events: Record<string, unknown>[] };

function envelope(name: string): Envelope {
  return readFixtureJson<Envelope>(`${DIR}/${name}`);
}

function withEvent(patch: (e: Record<string, any>) => void): Envelope {
  const env = envelope('v3-push-envelope.events.v2+json.json');
  patch(env.events[0]!);
  return env;
}

describe('normalizeDistribution', () => {
  describe('when given the distribution v3 push envelope', () => {
    it('turns the manifest push into one push event and ignores the two blob pushes', () => {
      const d = normalizeDistribution(envelope('v3-push-envelope.events.v2+json.json'));
      expect(d.events).toEqual([
        {
          kind: 'push',
          eventId: 'asdf-asdf-asdf-asdf-0',
          registry: 'registrycluster.local',
          repository: 'library/test',
          // target.digest is authoritative; the url names another (invalid, 65-hex) digest
          digest: 'sha256:fea8895f450959fa676bcc1df0611ea93823a735a01205fd8622846041d0c7cf',
          mediaType: 'application/vnd.docker.distribution.manifest.v2+json',
          tag: null,
          at: '2006-01-02T15:04:05.000Z',
        },
      ]);
      expect(d.ignored.map((i) => i.index)).toEqual([1, 2]);
      expect(d.ignored[0]!.reason).toContain('not a manifest');
      expect(d.rejected).toEqual([]);
    });
  });

  describe('when given the distribution 2.x envelope (schema1 manifest)', () => {
    it('queues nothing and says schema1 is not indexed', () => {
      const d = normalizeDistribution(envelope('v2-push-envelope.events.v1+json.json'));
      expect(d.events).toEqual([]);
      expect(d.ignored[0]).toMatchObject({ index: 0, eventId: 'asdf-asdf-asdf-asdf-0' });
      expect(d.ignored[0]!.reason).toContain('schema1');
      expect(d.ignored).toHaveLength(3);
    });
  });

  it('ignores pull events', () => {
    const d = normalizeDistribution(envelope('v3-pull-event.json'));
    expect(d.events).toEqual([]);
    expect(d.ignored[0]!.reason).toContain('"pull"');
  });

  it('keeps the tag of a manifest pushed by tag and parses nanosecond timestamps with offsets', () => {
    const pull = envelope('v3-pull-event.json');
    pull.events[0]!.action = 'push';
    const d = normalizeDistribution(pull);
    expect(d.events[0]).toMatchObject({
      kind: 'push',
      registry: '192.168.100.227:5000',
      repository: 'hello-world',
      tag: 'latest',
      at: '2016-03-09T22:44:26.402Z',
    });
  });

  it('turns a delete into a delete event (the documented target carries digest and repository only)', () => {
    const target = readFixtureJson<{ target: object }>(`${DIR}/delete-event-target.json`).target;
    const d = normalizeDistribution(
      withEvent((e) => {
        e.action = 'delete';
        e.target = target;
      }),
    );
    expect(d.events).toEqual([
      expect.objectContaining({
        kind: 'delete',
        repository: 'library/test',
        digest: 'sha256:d89e1bee20d9cb344674e213b581f14fbd8e70274ecf9d10c514bab78a307845',
      }),
    ]);
  });

  it('falls back to the host of target.url when request.host is absent', () => {
    const d = normalizeDistribution(withEvent((e) => delete e.request));
    expect(d.events[0]).toMatchObject({ registry: 'example.com' });
  });

  describe('when an image event has invalid fields', () => {
    it.each([
      ['a 65-hex digest', (e: Record<string, any>) => (e.target.digest = `sha256:${'a'.repeat(65)}`), 'not a sha256 digest'],
      ['no digest', (e: Record<string, any>) => delete e.target.digest, 'no digest'],
      ['an uppercase repository', (e: Record<string, any>) => (e.target.repository = 'Library/Test'), 'not a repository name'],
      ['a path-traversal repository', (e: Record<string, any>) => (e.target.repository = '../../etc'), 'not a repository name'],
      ['a hostile host', (e: Record<string, any>) => {
        e.request.host = 'evil.com/../x';
        e.target.url = 'not a url';
      }, 'is not a registry host'],
      ['a bad tag', (e: Record<string, any>) => (e.target.tag = '-bad tag'), 'is not a tag'],
      ['a bad timestamp', (e: Record<string, any>) => (e.timestamp = 'yesterday'), 'not a date'],
    ])('rejects the event with %s (and keeps the delivery)', (_name, patch, reason) => {
      const d = normalizeDistribution(withEvent(patch));
      expect(d.events).toEqual([]);
      expect(d.rejected).toHaveLength(1);
      expect(d.rejected[0]!.reason).toContain(reason);
    });
  });

  describe('when the body is not an envelope', () => {
    it.each([
      ['null', null],
      ['an array', []],
      ['no events', {}],
      ['empty events', { events: [] }],
      ['events not an array', { events: 'x' }],
      ['an event without a target', { events: [{ id: 'x', timestamp: 't', action: 'push' }] }],
      ['the bare delete target fragment', readFixtureJson(`${DIR}/delete-event-target.json`)],
      ['too many events', { events: Array.from({ length: 1001 }, () => envelope('v3-pull-event.json').events[0]) }],
    ])('throws MALFORMED for %s', (_name, body) => {
      expect(() => normalizeDistribution(body)).toThrow(WebhookError);
      try {
        normalizeDistribution(body);
      } catch (err) {
        expect((err as WebhookError).code).toBe('MALFORMED');
        expect((err as Error).message).toMatch(/^not a distribution notification envelope: /);
      }
    });
  });
});
