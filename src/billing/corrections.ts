/**
 * Corrections and Retractions against their original (the billing rules of the data model):
 * the original must exist, be a Usage event, and share account, product, meter and unit; a
 * Retraction's quantity is the original's negation (filled in when omitted). Whether the
 * original is already retracted is decided later, after idempotency (a retry of an accepted
 * Retraction is a duplicate, not `already_retracted`).
 *
 * Pure: the caller supplies how to find an original (batch first, then memory and segments).
 */
import { assert } from '../errors.ts';
import type { StoredEvent, UsageEvent } from '../model/event.ts';
import { negateQuantity } from '../model/quantity.ts';
import type { PendingEvent, RejectReason } from '../model/validate.ts';

export type CorrectionCheck = { event: UsageEvent } | { reason: RejectReason; message: string };

/** The fields a correction must share with its original. */
const SAME_AS_ORIGINAL = ['account_id', 'product_id', 'meter_id', 'unit'] as const;

export async function resolveCorrection(
  pending: PendingEvent,
  findOriginal: (eventId: string) => Promise<StoredEvent | UsageEvent | null>,
): Promise<CorrectionCheck> {
  const ref = pending.correction_ref;
  if (pending.kind === 'Usage' || ref === null) return { event: pending as UsageEvent };
  const original = await findOriginal(ref.original_event_id);
  if (original === null) {
    return { reason: 'unknown_original', message: `original event ${ref.original_event_id} does not exist` };
  }
  if (original.kind !== 'Usage') {
    return {
      reason: 'correction_mismatch',
      message: `original event ${ref.original_event_id} is not a Usage event`,
    };
  }
  for (const field of SAME_AS_ORIGINAL) {
    if (original[field] !== pending[field]) {
      return { reason: 'correction_mismatch', message: `${field} differs from the original event's` };
    }
  }
  if (pending.kind === 'Retraction') {
    const expected = negateQuantity(original.quantity);
    if (pending.quantity === null) return { event: { ...pending, quantity: expected } };
    if (pending.quantity !== expected) {
      return {
        reason: 'retraction_quantity_mismatch',
        message: `a Retraction's quantity must be the original's negation (${String(expected)})`,
      };
    }
  }
  assert(pending.quantity !== null, 'only a Retraction may omit quantity');
  return { event: pending as UsageEvent };
}
