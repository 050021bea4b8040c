import { once } from 'node:events';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Registry } from 'prom-client';
import { afterEach, describe, expect, it } from 'vitest';
import { createLogger } from '../common/logger.ts';
import { BreakGlassAlerts, type BreakGlassUse } from './break-glass.ts';

const use = (user: string, at = new Date()): BreakGlassUse => ({ at, namespace: 'ops-1', kind: 'Pod', name: 'fix', user, reason: 'INC-1', images: [{ image: 'r.example.com/a:1', reason: 'unsigned' }] });

async function failures(registry: Registry): Promise<Record<string, number>> {
  const metric = await registry.getSingleMetric('signet_break_glass_alert_failures_total')!.get();
  return Object.fromEntries(metric.values.map((v) => [String(v.labels.cause), v.value]));
}

describe('BreakGlassAlerts', () => {
  let server: Server | null = null;
  afterEach(() => server?.close());

  async function listen(status: number, seen: unknown[]): Promise<string> {
    server = createServer((req, res) => {
      let body = '';
      req.on('data', (c: Buffer) => (body += c.toString('utf8')));
      req.on('end', () => {
        seen.push(JSON.parse(body));
        res.writeHead(status).end();
      });
    });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    return `http://127.0.0.1:${(server.address() as AddressInfo).port}/`;
  }

  it('posts each use once in the repeat window, and counts what the endpoint refuses', async () => {
    const seen: unknown[] = [];
    const registry = new Registry();
    const alerts = new BreakGlassAlerts(await listen(500, seen), createLogger({ logLevel: 'silent' }), registry);
    alerts.alert(use('a@example.com'));
    alerts.alert(use('a@example.com'));
    alerts.alert(use('b@example.com'));
    await alerts.flush();
    expect(seen).toHaveLength(2);
    expect(seen[0]).toMatchObject({ breakGlass: { user: 'a@example.com', namespace: 'ops-1' } });
    expect(await failures(registry)).toEqual({ http: 2 });
  });

  it('counts an unreachable endpoint, and drops (counting) past 100 waiting', async () => {
    const registry = new Registry();
    // A port nothing listens on: every send fails.
    const closed = await listen(200, []);
    server!.close();
    await once(server!, 'close');
    server = null;
    const alerts = new BreakGlassAlerts(closed, createLogger({ logLevel: 'silent' }), registry);
    for (let i = 0; i < 105; i++) {
      alerts.alert(use(`u${i}@example.com`));
    }
    await alerts.flush();
    const counted = await failures(registry);
    expect(counted.network! + counted.dropped!).toBe(105);
    expect(counted.dropped).toBeGreaterThanOrEqual(4);
  });
});
