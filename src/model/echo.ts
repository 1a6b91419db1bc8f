/**
 * Input echoed back in errors (a rejected event's id, an unknown field's name, a bad flag) is
 * cut to a bounded prefix: a 10 MB id must not come back as a 10 MB error entry.
 *
 * Invariants:
 * - the prefix is at most ECHO_BYTES_MAX bytes of UTF-8 (or the bound given) and never splits
 *   a surrogate pair;
 * - a text within the bound comes back unchanged (the same string).
 */

/** Bytes of UTF-8 echoed at most (a lone surrogate counts as the 3 bytes of U+FFFD). */
export const ECHO_BYTES_MAX = 256;

export interface Echo {
  text: string;
  /** True when `text` is a prefix of the input, not all of it. */
  cut: boolean;
}

/** `value`, or its longest prefix of at most `maxBytes` bytes cut at a code-point boundary. */
export function echoOf(value: string, maxBytes = ECHO_BYTES_MAX): Echo {
  // Every UTF-16 unit is at most 3 bytes of UTF-8: short texts need no counting.
  if (value.length * 3 <= maxBytes) return { text: value, cut: false };
  let bytes = 0;
  let end = 0;
  while (end < value.length) {
    const unit = value.charCodeAt(end);
    const next = end + 1 < value.length ? value.charCodeAt(end + 1) : 0;
    const pair = unit >= 0xd800 && unit <= 0xdbff && next >= 0xdc00 && next <= 0xdfff;
    const size = pair ? 4 : unit < 0x80 ? 1 : unit < 0x800 ? 2 : 3;
    if (bytes + size > maxBytes) return { text: value.slice(0, end), cut: true };
    bytes += size;
    end += pair ? 2 : 1;
  }
  return { text: value, cut: false };
}

/** `value` cut as echoOf does, marked with "…" when cut (for messages). */
export function echoText(value: string, maxBytes = ECHO_BYTES_MAX): string {
  const echo = echoOf(value, maxBytes);
  return echo.cut ? `${echo.text}…` : echo.text;
}

/** How the cut is stated: "<what> cut to its first N characters" (N counts code points). */
export function cutNote(what: string, echo: Echo): string {
  return `${what} cut to its first ${[...echo.text].length} characters`;
}
