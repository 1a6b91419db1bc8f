/**
 * Times on the command line (docs/cli.md): RFC 3339 (`2026-05-01T00:00:00Z`, with an offset or
 * fractional seconds; a bare `2026-05-01` means midnight UTC) or integer milliseconds since
 * the epoch. Anything else, or a calendar date that does not exist, is refused.
 */
import { UsageDbError } from '../errors.ts';
import { echoText } from '../model/echo.ts';

const MS_PATTERN = /^[0-9]{1,16}$/;
const RFC3339_PATTERN =
  /^([0-9]{4})-([0-9]{2})-([0-9]{2})(?:[Tt ]([0-9]{2}):([0-9]{2}):([0-9]{2})(?:\.([0-9]{1,9}))?([Zz]|[+-][0-9]{2}:[0-9]{2}))?$/;

function bad(flag: string, text: string, why: string): UsageDbError {
  return new UsageDbError(
    'USAGEDB_ERR_INVALID_ARGUMENT',
    `${flag} ${JSON.stringify(echoText(text))} is not a valid time (${why}); use RFC 3339 such as 2026-05-01T00:00:00Z, or milliseconds since the epoch`,
  );
}

/** Milliseconds since the epoch of `text`; `flag` names the option in the error. */
export function parseTime(text: string, flag: string): number {
  if (MS_PATTERN.test(text)) {
    const ms = Number(text);
    if (!Number.isSafeInteger(ms)) throw bad(flag, text, 'too large');
    return ms;
  }
  const m = RFC3339_PATTERN.exec(text);
  if (m === null) throw bad(flag, text, 'unrecognised format');
  const [year, month, day] = [Number(m[1]), Number(m[2]), Number(m[3])];
  const [hour, minute, second] = m[4] === undefined ? [0, 0, 0] : [Number(m[4]), Number(m[5]), Number(m[6])];
  if (m[4] !== undefined && m[8] === undefined) throw bad(flag, text, 'a date-time needs Z or an offset');
  if (month < 1 || month > 12 || hour > 23 || minute > 59 || second > 59)
    throw bad(flag, text, 'field out of range');
  const daysInMonth = new Date(Date.UTC(year, month, 0)).getUTCDate();
  if (day < 1 || day > daysInMonth) throw bad(flag, text, 'no such day');
  // Sub-millisecond digits are dropped: stored timestamps are whole milliseconds.
  const ms = m[7] === undefined ? 0 : Number(m[7].padEnd(3, '0').slice(0, 3));
  let offsetMinutes = 0;
  const zone = m[8];
  if (zone !== undefined && zone.toUpperCase() !== 'Z') {
    const sign = zone[0] === '-' ? -1 : 1;
    const [oh, om] = [Number(zone.slice(1, 3)), Number(zone.slice(4, 6))];
    if (oh > 23 || om > 59) throw bad(flag, text, 'offset out of range');
    offsetMinutes = sign * (oh * 60 + om);
  }
  const utc = new Date(0);
  utc.setUTCFullYear(year, month - 1, day);
  utc.setUTCHours(hour, minute, second, ms);
  return utc.getTime() - offsetMinutes * 60_000;
}
