/** A store path with the metadata a push needs, as the local Nix reports it. */
export interface PathInfo {
  /** Full store path, e.g. /nix/store/<hash>-<name>. */
  path: string;
  /** Any form Nix prints (SRI in Nix 2.8, `sha256:<nix32>` elsewhere). */
  narHash: string;
  narSize: number;
  /** Full store paths; may include the path itself. */
  references: string[];
  deriver?: string;
  sigs: string[];
  ca?: string;
}

/** What the push engine reports while it works; renderers turn these into output. */
export type PushEvent =
  | { type: 'plan'; cache: string; toPush: number; narBytes: number; skippedPresent: number; skippedUpstream: number }
  | { type: 'start'; path: string; narSize: number }
  | { type: 'read'; path: string; bytes: number }
  | { type: 'sent'; path: string; bytes: number }
  | { type: 'deduplicated'; path: string; bytes: number }
  | { type: 'done'; path: string; narSize: number; bytesSent: number; bytesDeduplicated: number; seconds: number }
  | { type: 'failed'; path: string; error: string };

/** The outcome of pushing one set of roots. */
export interface PushSummary {
  cache: string;
  pathsTotal: number;
  pushed: string[];
  skippedPresent: string[];
  skippedUpstream: string[];
  failed: Array<{ path: string; error: string }>;
  /** Chunk-upload bodies sent on the wire. */
  bytesSent: number;
  /** NAR bytes of the pushed paths. */
  narBytes: number;
  /** NAR bytes not sent because the server already had their chunks. */
  bytesDeduplicated: number;
  seconds: number;
}
