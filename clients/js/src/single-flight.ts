// One fetch for many callers: concurrent calls share the promise in
// flight, so ten sockets whose tokens expire together cause one request.

export function singleFlight<T>(fetch: () => Promise<T>): () => Promise<T> {
  let inFlight: Promise<T> | null = null;
  return () => {
    if (inFlight === null) {
      inFlight = fetch().finally(() => {
        inFlight = null;
      });
    }
    return inFlight;
  };
}
