/** A clock tests move by hand: `clock.now()` is what code under test sees. */
export function fakeClock(start = Date.parse('2026-11-28T12:00:00Z')) {
  let t = start;
  return {
    now: (): number => t,
    advance(ms: number): void {
      t += ms;
    },
    set(ms: number): void {
      t = ms;
    },
  };
}
