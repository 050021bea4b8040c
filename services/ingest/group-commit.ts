interface Waiting<T, R> {
  readonly item: T;
  readonly resolve: (r: R) => void;
  readonly reject: (err: unknown) => void;
}

/**
 * Group commit: what is submitted while a write is in flight goes together in the next write, so
 * many concurrent callers cost about one round trip each time rather than one each, and a caller
 * alone waits for nothing but its own write (no timer, no batching delay).
 *
 * Each caller's promise settles with the write that holds its item, and only then: resolved once
 * that write succeeded (`write` resolves only when its items are durable), rejected when it failed.
 * A batch that fails is written again item by item, so one item that cannot be written fails alone
 * and the others are not refused for it; `write` must therefore be idempotent for an item (a job
 * id, a row counted by its key), since a failed batch may have written some of its items.
 */
export class GroupCommit<T, R> {
  readonly #write: (items: readonly T[]) => Promise<readonly R[]>;
  readonly #maxBatch: number;
  #queue: Waiting<T, R>[] = [];
  #writing = false;

  /** `write` returns one result per item, in order. */
  constructor(write: (items: readonly T[]) => Promise<readonly R[]>, options: { readonly maxBatch?: number } = {}) {
    this.#write = write;
    this.#maxBatch = Math.max(1, options.maxBatch ?? 256);
  }

  submit(item: T): Promise<R> {
    return new Promise<R>((resolve, reject) => {
      this.#queue.push({ item, resolve, reject });
      this.#next();
    });
  }

  /** Items waiting for a write (not counting the one in flight). */
  get waiting(): number {
    return this.#queue.length;
  }

  #next(): void {
    if (this.#writing || this.#queue.length === 0) {
      return;
    }
    this.#writing = true;
    const batch = this.#queue.splice(0, this.#maxBatch);
    void this.#flush(batch).finally(() => {
      this.#writing = false;
      this.#next();
    });
  }

  async #flush(batch: readonly Waiting<T, R>[]): Promise<void> {
    try {
      const results = await this.#call(batch.map((w) => w.item));
      batch.forEach((w, i) => w.resolve(results[i]!));
    } catch (err) {
      if (batch.length === 1) {
        batch[0]!.reject(err);
        return;
      }
      await Promise.all(
        batch.map(async (w) => {
          try {
            w.resolve((await this.#call([w.item]))[0]!);
          } catch (e) {
            w.reject(e);
          }
        }),
      );
    }
  }

  async #call(items: readonly T[]): Promise<readonly R[]> {
    const results = await this.#write(items);
    if (results.length !== items.length) {
      throw new Error(`group commit: ${results.length} results for ${items.length} items`);
    }
    return results;
  }
}
