/** One node of a NAR, in archive order. `path` is '' for the root, else slash-separated ('a/b/c'). */
export type NarEntry =
  | {
      type: 'regular';
      path: string;
      size: number;
      executable: boolean;
      /** Offset of the file contents within the NAR, for serving ranges without unpacking. */
      narOffset: number;
    }
  | { type: 'directory'; path: string }
  | { type: 'symlink'; path: string; target: string };
