// The simulated clock the large-mesh bench runs on: timers fire in time
// order (FIFO among equals), intervals repeat, cleared timers do not fire,
// promise chains started by a callback finish before time moves on.
import { afterEach, expect, it } from 'vitest';
import { SimClock } from '../../harness/sim-clock.js';

let clock: SimClock | undefined;
afterEach(() => clock?.uninstall());

it('runs timers in simulated time order and Date.now follows', async () => {
  clock = new SimClock(1_000).install();
  const seen: string[] = [];
  setTimeout(() => seen.push(`b@${Date.now()}`), 20);
  setTimeout(() => seen.push(`a@${Date.now()}`), 10);
  setTimeout(() => seen.push(`c@${Date.now()}`), 20);
  setImmediate(() => seen.push(`i@${Date.now()}`));
  const dropped = setTimeout(() => seen.push('never'), 5);
  clearTimeout(dropped);
  await clock.advance(25);
  expect(seen).toEqual(['i@1000', 'a@1010', 'b@1020', 'c@1020']);
  expect(Date.now()).toBe(1_025);
});

it('repeats intervals until cleared, and lets promise chains finish before the next timer', async () => {
  clock = new SimClock(0).install();
  const seen: string[] = [];
  const t = setInterval(() => {
    seen.push(`tick@${Date.now()}`);
    void Promise.resolve()
      .then(() => Promise.resolve())
      .then(() => seen.push(`then@${Date.now()}`));
  }, 100);
  setTimeout(() => clearInterval(t), 250);
  await clock.advance(1_000);
  expect(seen).toEqual(['tick@100', 'then@100', 'tick@200', 'then@200']);
});

it('until() reports the simulated time a condition took, and gives up at its limit', async () => {
  clock = new SimClock(0).install();
  let done = false;
  setTimeout(() => (done = true), 1_234);
  expect(await clock.until(() => done, 5_000, 'flag', 1)).toBe(1_234);
  await expect(clock.until(() => false, 100, 'never', 10)).rejects.toThrow(/never: not within 0.1 s/);
});
