/**
 * An open-addressing hash table from a 32-bit id fingerprint (word h1 of hash128) to a
 * sequence number, in typed arrays: no heap object per entry, so millions of recent ids cost
 * neither GC time nor Map's per-entry overhead. A JS Map of ~1.5M string keys measured
 * ~1 µs per lookup and ~0.7 µs per insert here (cache misses along its chains, plus GC
 * tracing); this table is one probe of 12 bytes in the common case.
 *
 * Fingerprints may collide: callers walk the slots holding a fingerprint (firstSlot, nextSlot)
 * and confirm the exact id of each, so a collision costs a probe, never a wrong answer. 32 bits
 * suffice: a probe meets another id with the same h1 once in ~4·10^9 comparisons, and a
 * second word cost 4 more bytes per slot (16 MiB at the default window).
 *
 * Invariants: linear probing with backward-shift deletion (no tombstones), so every entry is
 * reachable from its home slot without crossing an empty slot; load factor ≤ 1/2.
 */
const INITIAL_CAPACITY = 1 << 12;

export class IdSeqTable {
  private mask = INITIAL_CAPACITY - 1;
  /** h1 per slot. */
  private keys = new Uint32Array(INITIAL_CAPACITY);
  /** seq + 1 per slot; 0 = empty. */
  private seqs = new Float64Array(INITIAL_CAPACITY);
  private count = 0;

  get size(): number {
    return this.count;
  }

  /**
   * The first slot holding fingerprint `h1`, or -1; then `nextSlot` for the following ones.
   * Callers confirm each candidate's id themselves (a slot walk rather than a predicate
   * callback: a closure per lookup was an allocation per ingested event).
   */
  firstSlot(h1: number): number {
    return this.scan(h1 & this.mask, h1);
  }

  nextSlot(slot: number, h1: number): number {
    return this.scan((slot + 1) & this.mask, h1);
  }

  seqAt(slot: number): number {
    return this.seqs[slot] - 1;
  }

  private scan(from: number, h1: number): number {
    const { keys, seqs, mask } = this;
    for (let slot = from; seqs[slot] !== 0; slot = (slot + 1) & mask) {
      if (keys[slot] === h1) return slot;
    }
    return -1;
  }

  insert(h1: number, seq: number): void {
    if ((this.count + 1) * 2 > this.seqs.length) this.grow();
    this.place(h1, seq + 1);
    this.count++;
  }

  /** Removes the entry (h1, seq); false when absent. */
  delete(h1: number, seq: number): boolean {
    const { keys, seqs, mask } = this;
    let hole = h1 & mask;
    for (; seqs[hole] !== 0; hole = (hole + 1) & mask) {
      if (seqs[hole] === seq + 1 && keys[hole] === h1) break;
    }
    if (seqs[hole] === 0) return false;
    // Backward shift: pull later entries of the cluster into the hole when the hole lies on
    // their probe path (between their home slot and where they sit).
    for (let next = (hole + 1) & mask; seqs[next] !== 0; next = (next + 1) & mask) {
      const home = keys[next] & mask;
      const distNext = (next - home) & mask;
      const distHole = (hole - home) & mask;
      if (distHole < distNext) {
        keys[hole] = keys[next];
        seqs[hole] = seqs[next];
        hole = next;
      }
    }
    seqs[hole] = 0;
    this.count--;
    return true;
  }

  private place(h1: number, storedSeq: number): void {
    const { keys, seqs, mask } = this;
    let slot = h1 & mask;
    while (seqs[slot] !== 0) slot = (slot + 1) & mask;
    keys[slot] = h1;
    seqs[slot] = storedSeq;
  }

  private grow(): void {
    const oldKeys = this.keys;
    const oldSeqs = this.seqs;
    const capacity = oldSeqs.length * 2;
    this.mask = capacity - 1;
    this.keys = new Uint32Array(capacity);
    this.seqs = new Float64Array(capacity);
    for (let slot = 0; slot < oldSeqs.length; slot++) {
      if (oldSeqs[slot] !== 0) this.place(oldKeys[slot], oldSeqs[slot]);
    }
  }
}
