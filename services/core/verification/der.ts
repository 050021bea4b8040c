/** A DER length: short form below 128, else the minimal long form (what strict-DER parsers require). */
export function derLength(length: number): Buffer {
  if (length < 0x80) {
    return Buffer.from([length]);
  }
  const octets: number[] = [];
  for (let n = length; n > 0; n = Math.floor(n / 256)) {
    octets.unshift(n % 256);
  }
  return Buffer.from([0x80 | octets.length, ...octets]);
}
