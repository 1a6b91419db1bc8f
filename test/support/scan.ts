/** Every stored event of one account in [fromMs, toMs), through the audit listing (tests only). */
import type { UsageDb } from '../../src/db.ts';
import type { WireEvent } from '../../src/model/event.ts';

export async function scanAccount(
  db: UsageDb,
  accountId: string,
  fromMs: number,
  toMs: number,
): Promise<WireEvent[]> {
  const out: WireEvent[] = [];
  let cursor: string | null = null;
  do {
    const page: Awaited<ReturnType<UsageDb['events']>> = await db.events({
      account_id: accountId,
      from: fromMs,
      to: Math.min(toMs, 8.64e15),
      limit: 10_000,
      cursor,
    });
    out.push(...page.events);
    cursor = page.next_cursor;
  } while (cursor !== null);
  return out;
}
