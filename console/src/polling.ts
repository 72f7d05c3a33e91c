import { useEffect, useRef } from 'react';

/** Calls `read` now and again `interval()` ms after each read ends (never two at once), until
 * the component unmounts or `key` changes. */
export function usePolling(read: () => Promise<void>, interval: () => number, key: unknown): void {
  const latest = useRef(read);
  latest.current = read;
  const every = useRef(interval);
  every.current = interval;
  useEffect(() => {
    let stopped = false;
    let timer: number | undefined;
    async function tick() {
      await latest.current();
      if (!stopped) timer = window.setTimeout(tick, every.current());
    }
    void tick();
    return () => {
      stopped = true;
      window.clearTimeout(timer);
    };
  }, [key]);
}
