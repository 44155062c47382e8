/**
 * A bound on bytes held at once, handed out first come first served: `take(n)` waits until `n`
 * bytes are free (a request over the whole budget takes all of it) and resolves to the function
 * that gives them back.
 */
export class ByteBudget {
  readonly limit: number;
  #free: number;
  #waiting: { bytes: number; grant: () => void }[] = [];

  constructor(limit: number) {
    this.limit = limit;
    this.#free = limit;
  }

  get free(): number {
    return this.#free;
  }

  async take(requested: number): Promise<() => void> {
    const bytes = Math.max(1, Math.min(requested, this.limit));
    if (this.#waiting.length > 0 || bytes > this.#free) {
      await new Promise<void>((grant) => this.#waiting.push({ bytes, grant }));
    } else {
      this.#free -= bytes;
    }
    let given = false;
    return () => {
      if (given) return;
      given = true;
      this.#free += bytes;
      while (this.#waiting.length > 0 && this.#waiting[0]!.bytes <= this.#free) {
        const next = this.#waiting.shift()!;
        this.#free -= next.bytes;
        next.grant();
      }
    };
  }
}
