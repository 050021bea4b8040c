import { describe, expect, it } from 'vitest';
import { HOST_PATTERN, hostAllowlist } from './host-allowlist.ts';

describe('hostAllowlist', () => {
  it('matches exact hosts with their port, case-insensitively', () => {
    const a = hostAllowlist(['Registry.Example.com', '127.0.0.1:5000']);
    expect(a.allows('registry.example.com')).toBe(true);
    expect(a.allows('REGISTRY.example.COM')).toBe(true);
    expect(a.allows('127.0.0.1:5000')).toBe(true);
    expect(a.allows('127.0.0.1:5001')).toBe(false);
    expect(a.allows('127.0.0.1')).toBe(false);
    expect(a.allows('evil.registry.example.com')).toBe(false);
    expect(a.allows('registry.example.com.evil')).toBe(false);
  });

  it('matches subdomains of a *. pattern at any depth, not the bare domain, not other ports', () => {
    const a = hostAllowlist(['*.dkr.ecr.us-east-1.amazonaws.com']);
    expect(a.allows('123456789012.dkr.ecr.us-east-1.amazonaws.com')).toBe(true);
    expect(a.allows('a.b.dkr.ecr.us-east-1.amazonaws.com')).toBe(true);
    expect(a.allows('dkr.ecr.us-east-1.amazonaws.com')).toBe(false);
    expect(a.allows('x.dkr.ecr.us-east-1.amazonaws.com:8443')).toBe(false);
    expect(a.allows('evildkr.ecr.us-east-1.amazonaws.com')).toBe(false);
  });

  it('allows nothing when empty', () => {
    expect(hostAllowlist([]).allows('registry.example.com')).toBe(false);
  });

  it('accepts host[:port] and *.domain patterns only', () => {
    for (const ok of ['ghcr.io', 'localhost:5000', '*.example.com', '10.0.0.1:443']) {
      expect(HOST_PATTERN.test(ok), ok).toBe(true);
    }
    for (const bad of ['*', '*.com:443', 'a*.example.com', 'https://ghcr.io', 'ghcr.io/path', '']) {
      expect(HOST_PATTERN.test(bad), bad).toBe(false);
    }
  });
});
