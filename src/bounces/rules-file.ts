import { type Stats, stat, statSync } from 'node:fs';
import type { Logger } from 'pino';
import { loadRules, setRules } from './classify.ts';

/** What identifies one version of the file: an edit changes the time or size, a save by rename the inode. */
const versionOf = (s: Stats): string => `${s.ino}:${s.size}:${s.mtimeMs}`;

/**
 * The operator's classification rules (`bounces.rules_file`) instead of the shipped ones, read
 * at start and again whenever the file changes (checked every `intervalMs`). A file that does
 * not load keeps the rules in force and is logged: a typo never leaves delivery without rules.
 * Each thread that classifies (delivery, the inbound MX) watches for itself.
 *
 * Each check compares the file with the version last read (taken before reading it, so an edit
 * during the read is seen by the next check), not with the previous check: fs.watchFile's first
 * look happens some time after it is called, and an edit before it would never be noticed.
 */
export function useRulesFile(file: string, logger: Logger, intervalMs = 5_000): () => void {
  if (file === '') return () => {};
  let loaded = versionOf(statSync(file));
  setRules(loadRules(file));
  let checking = false;
  const check = (): void => {
    if (checking) return;
    checking = true;
    stat(file, (err, now) => {
      checking = false;
      if (err) return; // gone for a moment (an editor saving by rename): the rules stay
      const version = versionOf(now);
      if (version === loaded) return;
      loaded = version;
      try {
        setRules(loadRules(file));
        logger.info({ event: 'bounce_rules_reloaded', file }, 'bounce classification rules reloaded');
      } catch (e) {
        logger.error(
          { err: e, file },
          'bounce classification rules not reloaded; the previous rules stay in force',
        );
      }
    });
  };
  const timer = setInterval(check, intervalMs);
  timer.unref();
  return () => clearInterval(timer);
}
