/**
 * Engine-wide caches over dictionaries: a number for every distinct key value (so chunks with
 * different dictionaries agree on group identities without comparing strings per row), and
 * parsed dimension sets.
 *
 * Invariants:
 * - `ValueIds` gives one id per distinct value for its whole life (id 0 = null); a query keeps
 *   the instance it started with, and the engine replaces a full one only between queries;
 * - per-dictionary tables are keyed weakly by the dictionary array, which only grows (memtable)
 *   or never changes (segment readers): a table shorter than its dictionary is extended.
 */

/** Distinct values the engine keeps ids for before starting a fresh table. */
export const VALUE_IDS_MAX = 4_000_000;

export class ValueIds {
  private readonly ids = new Map<string, number>();
  readonly values: (string | null)[] = [null];
  private readonly byDict = new WeakMap<readonly string[], Int32Array>();

  get size(): number {
    return this.values.length;
  }

  id(value: string | null): number {
    if (value === null) return 0;
    let id = this.ids.get(value);
    if (id === undefined) {
      id = this.values.length;
      this.values.push(value);
      this.ids.set(value, id);
    }
    return id;
  }

  /** Ids of a dictionary's values, indexed by code + 1 (index 0 = null = id 0). */
  codes(dict: readonly string[]): Int32Array {
    let table = this.byDict.get(dict);
    if (table === undefined || table.length < dict.length + 1) {
      const next = new Int32Array(dict.length + 1);
      const known = table === undefined ? 0 : table.length - 1;
      if (table !== undefined) next.set(table);
      for (let c = known; c < dict.length; c++) next[c + 1] = this.id(dict[c]);
      table = next;
      this.byDict.set(dict, table);
    }
    return table;
  }
}

/** Parsed dimension sets per dictionary, kept across queries (dictionaries only grow). */
export class DimensionsCache {
  private readonly parsed = new WeakMap<readonly string[], Record<string, string>[]>();

  of(dict: readonly string[]): Record<string, string>[] {
    let list = this.parsed.get(dict);
    if (list === undefined) {
      list = [];
      this.parsed.set(dict, list);
    }
    for (let c = list.length; c < dict.length; c++) list.push(JSON.parse(dict[c]) as Record<string, string>);
    return list;
  }
}
