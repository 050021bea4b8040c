/**
 * A map from the exact reference strings admission points send to what parsing them gave, bounded
 * by an estimate of the bytes it holds: a flood of distinct references (anyone can send them) costs
 * a re-parse once the budget is spent, never memory beyond it. Cleared whole when full: the
 * references a cluster really runs come back on their next lookup, and the hot path stays one
 * `Map.get`.
 */
export class BoundedParseCache<V> {
  readonly #entries = new Map<string, V>();
  readonly #maxBytes: number;
  #bytes = 0;

  constructor(maxBytes: number) {
    this.#maxBytes = maxBytes;
  }

  /** Strings (keys and the parsed parts) counted at two bytes a character, plus the objects. */
  static estimate(key: string): number {
    return 4 * key.length + ENTRY_OVERHEAD_BYTES;
  }

  get(key: string): V | undefined {
    return this.#entries.get(key);
  }

  set(key: string, value: V): void {
    if (this.#entries.has(key)) {
      return;
    }
    const size = BoundedParseCache.estimate(key);
    if (this.#bytes + size > this.#maxBytes) {
      this.#entries.clear();
      this.#bytes = 0;
    }
    this.#entries.set(key, value);
    this.#bytes += size;
  }

  get size(): number {
    return this.#entries.size;
  }

  get bytes(): number {
    return this.#bytes;
  }
}

/** A parsed reference, its store keys and its last answer: a handful of objects and short strings. */
const ENTRY_OVERHEAD_BYTES = 600;
