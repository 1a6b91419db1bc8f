/**
 * Progress for long work: a cli-progress bar on stderr when it is a TTY (and not --json);
 * otherwise nothing, so pipes and logs stay clean.
 */
import cliProgress from 'cli-progress';
import type { TextSink } from './context.ts';

export interface Progress {
  update(value: number, total?: number): void;
  stop(): void;
}

const SILENT: Progress = { update: () => undefined, stop: () => undefined };

/** `unit` names what is counted ("bytes", "events"); `total` 0 means unknown. */
export function startProgress(
  enabled: boolean,
  stream: TextSink,
  label: string,
  total: number,
  unit: string,
): Progress {
  if (!enabled) return SILENT;
  const bar = new cliProgress.SingleBar(
    {
      stream,
      format: `${label} [{bar}] {percentage}% | {value}/{total} ${unit} | {duration_formatted}`,
      hideCursor: true,
      clearOnComplete: true,
      etaBuffer: 50,
    },
    cliProgress.Presets.shades_classic,
  );
  bar.start(Math.max(total, 1), 0);
  return {
    update(value, newTotal) {
      if (newTotal !== undefined) bar.setTotal(Math.max(newTotal, value, 1));
      bar.update(value);
    },
    stop() {
      bar.stop();
    },
  };
}
