import { describe, expect, it } from 'vitest';
import type { AdmittedImage } from '../common/domain/admission.ts';
import { reasonLabel } from './admission-record.ts';

const image = (reason: string, allowed: boolean): AdmittedImage => ({ image: `img-${reason}`, digest: null, allowed, reason, rule: null, mode: 'enforce' });

describe('reasonLabel', () => {
  it('names the reason that decided the request: the first image whose decision made the result', () => {
    const images = [image('verified', true), image('unsigned', false), image('unknown', false)];
    expect(reasonLabel({ result: 'denied', images })).toBe('unsigned');
    expect(reasonLabel({ result: 'allowed', images: [image('allowed_without_verification', true), image('verified', true)] })).toBe('allowed_without_verification');
    expect(reasonLabel({ result: 'warned', images })).toBe('unsigned');
    expect(reasonLabel({ result: 'allowed', images: [] })).toBe('no_images');
  });

  it('keeps the label a closed set: a reason Signet does not know is "other"', () => {
    expect(reasonLabel({ result: 'denied', images: [image('made-up <reason> from elsewhere', false)] })).toBe('other');
    expect(reasonLabel({ result: 'exempted', images: [image('exempted', false)] })).toBe('exempted');
    expect(reasonLabel({ result: 'warned', images: [image('break_glass', false)] })).toBe('break_glass');
  });
});
