/** Events of one account for billing tests (May and June 2026, UTC). */
import type { WireInput } from '../support/events.ts';

export const MAY = Date.UTC(2026, 4, 1);
export const JUNE = Date.UTC(2026, 5, 1);
export const HOUR = 3_600_000;

export function ev(id: string, overrides: WireInput = {}): WireInput {
  return {
    event_id: id,
    account_id: 'acme',
    product_id: 'llm-api',
    meter_id: 'tokens.input',
    model_id: 'gpt-x',
    unit: 'tokens',
    source: 'gateway',
    timestamp_ms: MAY + HOUR,
    quantity: 100,
    ...overrides,
  };
}

export function retraction(id: string, original: string, overrides: WireInput = {}): WireInput {
  return ev(id, {
    kind: 'Retraction',
    quantity: undefined,
    correction_ref: { original_event_id: original, reason: 'refund' },
    ...overrides,
  });
}

export function correction(
  id: string,
  original: string,
  quantity: number,
  overrides: WireInput = {},
): WireInput {
  return ev(id, {
    kind: 'Correction',
    quantity,
    correction_ref: { original_event_id: original, reason: 'recount' },
    ...overrides,
  });
}
