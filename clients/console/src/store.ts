// A value that components subscribe to: the whole state machinery of the console.
import { useEffect, useState } from "preact/hooks";

export class Store<T> {
  private subs = new Set<(value: T) => void>();
  constructor(private value: T) {}

  get(): T {
    return this.value;
  }

  set(value: T): void {
    if (Object.is(value, this.value)) return;
    this.value = value;
    for (const fn of [...this.subs]) fn(value);
  }

  update(fn: (value: T) => T): void {
    this.set(fn(this.value));
  }

  subscribe(fn: (value: T) => void): () => void {
    this.subs.add(fn);
    return () => this.subs.delete(fn);
  }
}

/** The store's current value; the component re-renders when it changes. */
export function useStore<T>(store: Store<T>): T {
  const [value, setValue] = useState(store.get());
  useEffect(() => {
    setValue(store.get());
    return store.subscribe(setValue);
  }, [store]);
  return value;
}
