import { unwatchFile, watchFile } from 'node:fs';
import type { Logger } from 'pino';
import { loadRules, setRules } from './classify.ts';

/**
 * The operator's classification rules (`bounces.rules_file`) instead of the shipped ones, read
 * at start and again whenever the file changes (checked every `intervalMs`). A file that does
 * not load keeps the rules in force and is logged: a typo never leaves delivery without rules.
 * Each thread that classifies (delivery, the inbound MX) watches for itself.
 */
export function useRulesFile(file: string, logger: Logger, intervalMs = 5_000): () => void {
  if (file === '') return () => {};
  setRules(loadRules(file));
  const reload = (): void => {
    try {
      setRules(loadRules(file));
      logger.info({ event: 'bounce_rules_reloaded', file }, 'bounce classification rules reloaded');
    } catch (err) {
      logger.error(
        { err, file },
        'bounce classification rules not reloaded; the previous rules stay in force',
      );
    }
  };
  watchFile(file, { interval: intervalMs, persistent: false }, (now, before) => {
    if (now.mtimeMs !== before.mtimeMs || now.size !== before.size) reload();
  });
  return () => unwatchFile(file);
}
