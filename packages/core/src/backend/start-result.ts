/** Outcome of trying to start one backend. */
export interface StartResult {
  /** Whether the backend is now tfjs' active backend. */
  ok: boolean;
  /** On success what it runs on (e.g. the adapter); on failure why it could not start. */
  why: string;
}
