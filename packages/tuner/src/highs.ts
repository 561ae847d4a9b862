// HiGHS (the WebAssembly build of the `highs` package), loaded once per process.
// Note: highs-js reads the solution from the solver's own printout, so `output_flag` must stay on;
// nothing is printed to the console unless `log_to_console` is set.
import highsLoader from 'highs';

export type Highs = Awaited<ReturnType<typeof highsLoader>>;
export type HighsSolution = ReturnType<Highs['solve']>;

let loading: Promise<Highs> | null = null;

export function loadHighs(): Promise<Highs> {
  if (!loading) loading = highsLoader();
  return loading;
}

/** Drops the cached instance (after a solver error the WebAssembly heap may be unusable). */
export function resetHighs(): void {
  loading = null;
}
